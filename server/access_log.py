"""The structured access log: one JSON object per line and per request, off by default,
on with `[server] access_log` ("-": standard error, else a file path).

The event loop only formats the line and puts it on a queue (no system call); a
writer thread of its own appends the lines to the file, opened once, and flushes
whenever the queue runs empty, so a line is on disk a moment after its response and a
slow disk never holds a request. `close()` writes what is queued and closes the file.

Fields: `time` (UTC, ms), `requestId`, `listener` ("s3" or "web"), `method`,
`operation` (the S3 operation, or the web route template), `bucket`, `key`,
`account` (account id, null when anonymous or unknown), `principal` (the access key,
"dashboard" for a signed-in session, "anonymous"), `status`, `bytesIn`, `bytesOut`,
`durationMs`, `remote` (client address)."""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from typing import IO, Any

log = logging.getLogger("folio.access")

# Lines written before the file is flushed even if more are queued: a flood of
# requests still reaches the disk in bounded pieces.
_FLUSH_EVERY = 512


def iso_time(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds, as S3 and the JSON APIs write times."""
    whole = int(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch - whole) * 1000):03d}Z"


class AccessLog:
    def __init__(self, target: str) -> None:
        """`target`: "-" for standard error, else a file path (appended to)."""
        self.target = target
        self._own_file = target != "-"
        # Opened here, once: a path that cannot be written stops the start-up with its error.
        # Unbuffered, appending: each batch of lines is one write() at the file's end, so the
        # workers of `folio serve --workers N` sharing the file never split each other's lines.
        self._file: IO[bytes] | None = open(target, "ab", buffering=0) if self._own_file else None  # noqa: SIM115
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="folio-access-log", daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, record: dict[str, Any]) -> None:
        """Queue one request's line (called on the event loop: no I/O here)."""
        if not self._closed:
            self._queue.put(json.dumps(record, ensure_ascii=False, separators=(",", ":")))

    def _write_loop(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                break
            stop = False
            batch = [line]
            while len(batch) < _FLUSH_EVERY:
                try:
                    line = self._queue.get_nowait()
                except queue.Empty:
                    break
                if line is None:
                    stop = True
                    break
                batch.append(line)
            try:
                self._append("".join(f"{line}\n" for line in batch))
            except OSError as exc:  # a full disk: the log loses lines, requests go on
                log.warning("access log %s: %s", self.target, exc)
            if stop:
                break

    def _append(self, text: str) -> None:
        if self._file is None:
            sys.stderr.write(text)
            sys.stderr.flush()
            return
        data = memoryview(text.encode("utf-8"))
        while data:  # one write() unless the kernel takes less (a full disk, a signal)
            written = self._file.write(data)
            if not written:
                raise OSError("the access log took no bytes")
            data = data[written:]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.warning("access log %s: %s", self.target, exc)
