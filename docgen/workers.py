"""A pool of warm rendering processes. WeasyPrint is imported once in a fork server;
each worker forks from it ready to render, takes one job at a time over a pipe, and
is replaced after `recycle_after` jobs (so memory stays flat) or at once when a job
overruns its timeout (the process is killed; other jobs carry on in theirs). The
event loop only ever waits on the pipe, in a thread."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from docgen.options import RenderJob
from docgen.output import Rendered, RenderError

log = logging.getLogger("folio.docgen")


class RenderTimeout(Exception):
    pass


def _worker_main(conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the parent's to handle
    # Only here: importing WeasyPrint changes Pillow's process-wide settings, which the
    # server process (image transforms) must not inherit. The fork server preloads it.
    from docgen.render import render

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        try:
            result: tuple[str, object] = ("ok", render(job))
        except RenderError as exc:
            result = ("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is the job's, reported on it
            result = ("error", f"The document could not be rendered: {type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


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
    def __init__(self, size: int, recycle_after: int) -> None:
        self.size = size
        self.recycle_after = recycle_after
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["docgen.render"])
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        # Sending, receiving and starting block: they run here, one thread per worker.
        self._threads = ThreadPoolExecutor(size + 1, thread_name_prefix="folio-docgen")
        self.started = 0  # processes started (a hook for tests: recycling, kills)
        self._closed = False
        self._warm: asyncio.Task | None = None

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child,), daemon=True, name="folio-docgen-worker")
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._all.add(worker)
        self.started += 1
        return worker

    async def start(self) -> None:
        """Warm the workers (once; later calls wait for the first). Done on the first
        document, not at server start: a Folio that makes no documents keeps no
        WeasyPrint processes (about 100 MiB each) around."""
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
    def _exchange(worker: _Worker, job: RenderJob) -> tuple[str, object]:
        worker.conn.send(job)
        return worker.conn.recv()

    async def run(self, job: RenderJob, timeout: float) -> Rendered:
        """Render in a worker; RenderError for a bad document, RenderTimeout past `timeout`."""
        await self.start()
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        exchange = loop.run_in_executor(self._threads, self._exchange, worker, job)
        # A killed worker's pipe fails in the thread: that error is expected, not news.
        exchange.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            status, value = await asyncio.wait_for(asyncio.shield(exchange), timeout)
        except TimeoutError as exc:
            log.warning("a document job overran its %.0f s timeout; its worker is killed", timeout)
            await self._replace(worker, kill=True)
            raise RenderTimeout(f"The document took longer than its timeout of {timeout:g} s.") from exc
        except (EOFError, OSError) as exc:
            await self._replace(worker, kill=True)
            raise RenderError("The renderer stopped unexpectedly.") from exc
        except asyncio.CancelledError:
            # The caller went away mid-job: the worker may still be busy; replace it.
            await asyncio.shield(self._replace(worker, kill=True))
            raise
        worker.jobs += 1
        if worker.jobs >= self.recycle_after:
            await self._replace(worker, kill=False)
        else:
            self._idle.put_nowait(worker)
        if status != "ok":
            raise RenderError(str(value))
        assert isinstance(value, Rendered)
        return value

    def close(self) -> None:
        self._closed = True
        for worker in list(self._all):
            worker.stop(kill=True)
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
