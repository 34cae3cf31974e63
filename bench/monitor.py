"""Watching the machine during a run: a server's CPU and RSS, and how much CPU other work takes.

The machine's two cores are shared with other work, so every measured run also reports how
much CPU went to anything that was neither the server, the load generator nor this process.
"""

from __future__ import annotations

import resource
import sys
import threading
import time

import psutil


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssWatcher:
    """Polls the server's RSS (with its children) every 20 ms on a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1

    def __enter__(self) -> RssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


def _process_busy_seconds() -> float:
    """CPU seconds all cores spent running processes since boot, plus what the hypervisor stole."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "steal", 0.0)


def _kernel_thread_seconds() -> float:
    """CPU seconds of the kernel's own threads (disk writeback and the like, often on our behalf)."""
    total = 0.0
    try:
        kernel_threads = psutil.Process(2).children()
    except psutil.Error:
        return 0.0
    for thread in kernel_threads:
        try:
            times = thread.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OtherLoad:
    """Measures how much CPU other work took while we measured: the machine's busy time less ours
    (server, load generator, this process) and less the kernel's threads, as % of one core."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._busy, self._kernel, self._own = (
            _process_busy_seconds(),
            _kernel_thread_seconds(),
            _own_seconds(),
        )

    def percent(self, ours: float = 0.0) -> float:
        wall = time.monotonic() - self._wall
        other = (
            (_process_busy_seconds() - self._busy)
            - (_kernel_thread_seconds() - self._kernel)
            - (_own_seconds() - self._own)
            - ours
        )
        return round(max(0.0, 100 * other / wall), 1) if wall > 0 else 0.0


def background_load(seconds: float = 2.0) -> float:
    """How busy the machine is with other work while nothing of ours runs, as % of one core."""
    load = OtherLoad()
    time.sleep(seconds)
    return load.percent()


def wait_for_quiet(limit_s: float, threshold_pct: float = 25.0) -> float:
    """Wait (at most `limit_s`) until other work on the machine uses under `threshold_pct` of a core."""
    deadline = time.monotonic() + limit_s
    load = background_load()
    while load >= threshold_pct and time.monotonic() < deadline:
        log(f"machine busy with other work ({load:.0f}% of a core); waiting for it to settle")
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        load = background_load()
    if load >= threshold_pct:
        log(f"warning: other work uses {load:.0f}% of a core: figures will be depressed")
    return load
