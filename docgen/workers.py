"""Pools of warm worker processes. WeasyPrint is imported once in a fork server; each
worker forks from it ready for its task (rendering documents, or evaluating
templates), takes one job at a time over a pipe, and is replaced after
`recycle_after` jobs (so memory stays flat), when a job says its worker should go,
or at once when a job overruns its timeout (the process is killed; other jobs carry
on in theirs). A pool may cap its workers' memory (RLIMIT_AS): a job past it fails
in its own process; and lower their CPU priority, so that a busy worker never
slows the server's own requests. The event loop only ever waits on the pipe, in a thread."""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from docgen.options import RenderJob
from docgen.output import Rendered, RenderError
from docgen.templates import TemplateProblem

log = logging.getLogger("folio.docgen")

# What a worker of each task runs (module, function), resolved in the worker: the
# server process never imports WeasyPrint (it changes Pillow's process-wide settings).
TASKS = {"render": ("docgen.render", "render"), "template": ("docgen.templates", "evaluate")}
_PRELOAD = ["docgen.render", "docgen.templates"]


class RenderTimeout(Exception):
    pass


class WorkerDied(RenderError):
    """The worker process ended mid-job (a crash, or the kernel refusing it memory)."""


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_memory(extra_bytes: int) -> None:
    """Address space beyond what the worker has at start (WeasyPrint and all): an
    allocation past it is a MemoryError in the job, not a gigabyte on the machine."""
    try:
        ceiling = _address_space() + extra_bytes
    except OSError:
        return  # no /proc: no limit rather than a wrong one
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def _outcome(handler: Callable[[object], object], job: object) -> tuple[str, object, bool]:
    """(status, result or message, whether this worker should retire)."""
    try:
        if job is None:
            raise MemoryError
        return ("ok", handler(job), False)
    except MemoryError:
        return ("error", "The job needs more memory than it may use.", True)
    except Exception as exc:  # noqa: BLE001 - any failure is the job's, reported on it
        # The job's own errors say what went wrong; anything else is named by its type.
        if isinstance(exc, TemplateProblem):
            return ("error", str(exc), exc.retire_worker)
        if isinstance(exc, RenderError):
            return ("error", str(exc), False)
        return ("error", f"The document could not be rendered: {type(exc).__name__}: {exc}", False)


def _worker_main(conn: Connection, task: str = "render", memory_bytes: int = 0, niceness: int = 0) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the parent's to handle
    if niceness:
        os.nice(niceness)
    module, name = TASKS[task]
    # Only here: importing WeasyPrint changes Pillow's process-wide settings, which the
    # server process (image transforms) must not inherit. The fork server preloads it.
    handler = getattr(importlib.import_module(module), name)
    if memory_bytes:
        _limit_memory(memory_bytes)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        except MemoryError:
            job = None  # a job too large to even receive under the memory limit
        result = _outcome(handler, job)
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return
        if result[2]:
            return  # retired: the pool starts a fresh worker in its place


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.jobs = 0

    def stop(self, kill: bool = False) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
        if kill:
            self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


class WorkerPool:
    def __init__(
        self, size: int, recycle_after: int, task: str = "render", memory_bytes: int = 0, niceness: int = 0
    ) -> None:
        self.size = size
        self.recycle_after = recycle_after
        self.task = task
        self.memory_bytes = memory_bytes
        self.niceness = niceness
        self._context = multiprocessing.get_context("forkserver")
        # One fork server for every pool (the setting is the context's): it preloads
        # what all of them run.
        self._context.set_forkserver_preload(_PRELOAD)
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        # Sending, receiving and starting block: they run here, one thread per worker.
        self._threads = ThreadPoolExecutor(size + 1, thread_name_prefix=f"folio-docgen-{task}")
        self.started = 0  # processes started (a hook for tests: recycling, kills)
        self._closed = False
        self._warm: asyncio.Task | None = None

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self.task, self.memory_bytes, self.niceness),
            daemon=True,
            name=f"folio-docgen-{self.task}",
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._all.add(worker)
        self.started += 1
        return worker

    async def start(self) -> None:
        """Warm the workers (once; later calls wait for the first). Done on the first
        job, not at server start: a Folio that makes no documents keeps no WeasyPrint
        processes (about 100 MiB each) around."""
        if self._warm is None:
            self._warm = asyncio.ensure_future(self._spawn_all())
        await asyncio.shield(self._warm)

    async def _spawn_all(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.size):
            self._idle.put_nowait(await loop.run_in_executor(self._threads, self._spawn))

    async def _replace(self, worker: _Worker, kill: bool) -> None:
        self._all.discard(worker)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, worker.stop, kill)
        if not self._closed:
            self._idle.put_nowait(await loop.run_in_executor(self._threads, self._spawn))

    @staticmethod
    def _exchange(worker: _Worker, job: object) -> tuple[str, object, bool]:
        worker.conn.send(job)
        return worker.conn.recv()

    async def call(self, job: object, timeout: float) -> object:
        """Run one job in a worker: its result; RenderError with the job's own message
        when it failed, WorkerDied when its process ended, RenderTimeout past `timeout`."""
        await self.start()
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        exchange = loop.run_in_executor(self._threads, self._exchange, worker, job)
        # A killed worker's pipe fails in the thread: that error is expected, not news.
        exchange.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            status, value, retire = await asyncio.wait_for(asyncio.shield(exchange), timeout)
        except TimeoutError as exc:
            log.warning("a %s job overran its %g s timeout; its worker is killed", self.task, timeout)
            await self._replace(worker, kill=True)
            raise RenderTimeout(f"The job took longer than its timeout of {timeout:g} s.") from exc
        except (EOFError, OSError) as exc:
            await self._replace(worker, kill=True)
            raise WorkerDied("The renderer stopped unexpectedly.") from exc
        except asyncio.CancelledError:
            # The caller went away mid-job: the worker may still be busy; replace it.
            await asyncio.shield(self._replace(worker, kill=True))
            raise
        worker.jobs += 1
        if retire or worker.jobs >= self.recycle_after:
            await self._replace(worker, kill=False)
        else:
            self._idle.put_nowait(worker)
        if status != "ok":
            raise RenderError(str(value))
        return value

    async def run(self, job: RenderJob, timeout: float) -> Rendered:
        """Render a document in a worker; RenderError for a bad one, RenderTimeout past `timeout`."""
        try:
            rendered = await self.call(job, timeout)
        except RenderTimeout as exc:
            raise RenderTimeout(f"The document took longer than its timeout of {timeout:g} s.") from exc
        assert isinstance(rendered, Rendered)
        return rendered

    def close(self) -> None:
        self._closed = True
        for worker in list(self._all):
            worker.stop(kill=True)
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
