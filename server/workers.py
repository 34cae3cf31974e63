"""`folio serve --workers N`: a supervising parent and N worker processes.

The parent prepares what must happen once (migrations, start-up recovery, the admin
account: `prepare`), binds both listeners itself (so ports, TLS and the configuration
are those of one process) and forks the workers, which serve on the sockets they inherit,
each with its own database connections and group commit, its own event loop and its own
background tasks (server/cluster.py decides which of them runs each sweep).

The parent does nothing else: it restarts a worker that exits unexpectedly (after a
pause that grows while the worker keeps dying young), forwards SIGTERM and SIGINT to the
workers and waits for them for the shutdown grace period (then SIGKILL), and exits. Each
worker asks the kernel for a SIGTERM when the parent dies (PR_SET_PDEATHSIG), so a parent
killed with SIGKILL does not leave workers serving: they drain and stop as on SIGTERM.

Sockets: `REUSEPORT` (the default) gives each worker its own listening socket per address,
bound with SO_REUSEPORT: the kernel spreads connections over them by their address hash. The
parent keeps every socket open, so connections the kernel queued for a worker that died are
accepted by the worker started in its place. `SHARED` puts one listening socket per address in
every worker (whichever worker accepts first takes the connection). docs/scale-out.md
("Workers on one machine") has the measurement that chose between them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.config import Config, parse_listen

log = logging.getLogger("folio.workers")

# Listening sockets per address, by listen string ("127.0.0.1:9000").
Listeners = dict[str, list[socket.socket]]

SHARED = "shared"
REUSEPORT = "reuseport"
# Chosen by measurement (docs/scale-out.md, bench/choose_workers.py): with one shared socket
# the worker that wakes first accepts a whole burst of connections (1 and 15 of 16 in two runs
# of eight), with SO_REUSEPORT the kernel's hash splits them 8/8 to 4/12, and 4 KiB PUTs went
# 1.2x faster. FOLIO_WORKER_SOCKETS=shared chooses the other for a benchmark.
DEFAULT_SOCKETS = REUSEPORT
BACKLOG = 2048  # uvicorn's default
# A worker that dies younger than this is restarted after a pause that doubles each time.
YOUNG_SECONDS = 10.0
FIRST_PAUSE, MAX_PAUSE = 0.5, 30.0
# Beyond the grace period, how long the workers get to close their databases.
CLOSE_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def bind(listen: str, *, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets for every address `listen` resolves to (as asyncio's
    create_server binds them)."""
    host, port = parse_listen(listen)
    sockets: list[socket.socket] = []
    seen = set()
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def socket_mode() -> str:
    mode = os.environ.get("FOLIO_WORKER_SOCKETS", DEFAULT_SOCKETS)
    if mode not in (SHARED, REUSEPORT):
        raise ValueError(f"FOLIO_WORKER_SOCKETS must be {SHARED!r} or {REUSEPORT!r}")
    return mode


@dataclass
class _Worker:
    index: int
    pid: int = 0
    started: float = 0.0
    pause: float = 0.0
    due: float = 0.0  # when to start it again (monotonic); 0: running


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when the parent dies (Linux); if it died already, stop now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the heartbeat notices the parent gone
        pass
    if os.getppid() != parent:
        os._exit(0)


class Supervisor:
    def __init__(self, config: Config, count: int, worker: Callable[[int, Listeners], None]) -> None:
        self.config = config
        self.count = count
        self.worker = worker
        self.mode = socket_mode()
        self.listeners: list[Listeners] = []
        self.workers = [_Worker(index) for index in range(count)]
        self.by_pid: dict[int, _Worker] = {}

    def _bind(self) -> None:
        listens = (self.config.server.s3_listen, self.config.server.web_listen)
        if self.mode == SHARED:
            shared = {listen: bind(listen) for listen in listens}
            self.listeners = [shared] * self.count
        else:
            self.listeners = [
                {listen: bind(listen, reuse_port=True) for listen in listens} for _ in range(self.count)
            ]

    def run(self) -> int:
        """Bind, start the workers, supervise until SIGTERM/SIGINT; the exit status."""
        signals = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        # Blocked, not handled: sigtimedwait below takes them one at a time (a blocked
        # SIGCHLD is queued, not ignored). The workers unblock them.
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        self._bind()
        for worker in self.workers:
            self._start(worker)
        log.info("supervising %d workers (%s sockets), pid %d", self.count, self.mode, os.getpid())
        while True:
            info = signal.sigtimedwait(signals, 1.0)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping %d workers (signal %d)", self.count, info.si_signo)
                return self._stop(info.si_signo)
            self._reap()
            now = time.monotonic()
            for worker in self.workers:
                if worker.pid == 0 and worker.due <= now:
                    self._start(worker)

    def _start(self, worker: _Worker) -> None:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                _die_with_parent(parent)
                if self.mode == REUSEPORT:
                    # The other workers' sockets: a copy open here would keep one listening
                    # (connections queued, never served) after its own worker closed it.
                    for index, listeners in enumerate(self.listeners):
                        if index != worker.index:
                            for sockets in listeners.values():
                                for sock in sockets:
                                    sock.close()
                self.worker(worker.index, self.listeners[worker.index])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - reported, then the parent restarts us
                log.exception("worker %d failed", worker.index)
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        worker.pid, worker.started, worker.due = pid, time.monotonic(), 0.0
        self.by_pid[pid] = worker
        log.info("worker %d started (pid %d)", worker.index, pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.by_pid.pop(pid, None)
            if worker is None:
                continue
            lived = time.monotonic() - worker.started
            worker.pause = (
                0.0 if lived >= YOUNG_SECONDS else min(max(worker.pause * 2, FIRST_PAUSE), MAX_PAUSE)
            )
            worker.pid, worker.due = 0, time.monotonic() + worker.pause
            log.warning(
                "worker %d (pid %d) exited (%s) after %.1f s: restarting it%s",
                worker.index,
                pid,
                _describe(status),
                lived,
                f" in {worker.pause:.1f} s" if worker.pause else "",
            )

    def _stop(self, signum: int) -> int:
        for pid in list(self.by_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # The listeners close now, as a single process's would: once the workers have closed
        # their copies too, new connections are refused while requests in flight finish.
        self._close_listeners()
        deadline = time.monotonic() + self.config.server.shutdown_grace_seconds + CLOSE_SECONDS
        while self.by_pid and time.monotonic() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, max(0.01, min(0.5, deadline - time.monotonic())))
            self._collect()
        for pid in list(self.by_pid):
            log.warning("worker pid %d did not stop within the grace period: killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self.by_pid:
            pid, _status = os.waitpid(-1, 0)
            self.by_pid.pop(pid, None)
        log.info("all workers stopped")
        return 0

    def _close_listeners(self) -> None:
        for listeners in self.listeners[:1] if self.mode == SHARED else self.listeners:
            for sockets in listeners.values():
                for sock in sockets:
                    sock.close()

    def _collect(self) -> None:
        """Reap workers that stopped (no restart: we are stopping)."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.by_pid.clear()
                return
            if pid == 0:
                return
            self.by_pid.pop(pid, None)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def supervise(config: Config, count: int, worker: Callable[[int, Listeners], None]) -> int:
    return Supervisor(config, count, worker).run()
