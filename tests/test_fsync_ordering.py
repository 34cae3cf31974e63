"""The ordering a power loss depends on (issue 19), with the object engine in-process.

Every fsync/fdatasync (its descriptor mapped to a path through /proc/self/fd), write,
O_CREAT open, mkdir, rename/replace/link and unlink under the test's directory, every
COMMIT on the metadata database's connections and the moment each engine call returns
(its acknowledgement) go into one ordered log. `check_ordering` then holds every
acknowledged operation to the rule docs/storage.md states ("What a power loss can and
cannot take"):

- bytes in a blob: fsync of the file after its last write, then its rename (or link) to
  blobs/ab/cd/<id>, then an fsync of that directory (and of the parent of any directory
  made on the way), all before the COMMIT that references the blob;
- that COMMIT, then an fsync of the -wal file, both before the acknowledgement;
- a blob the operation frees is unlinked only after that WAL fsync.

The negative tests take one step out of the engine (the directory fsync, the WAL fsync, the
file fsync moved after the rename) and check that the checker names what went missing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

import core.db
import s3proxy.store.blobs as blobs_module
from core.config import Config, load_config
from s3proxy.store import copy as copy_engine
from s3proxy.store.blobs import BlobFile, _fsync_dir
from s3proxy.store.engine import Store
from s3proxy.store.models import Bucket, ObjectMeta, WriteConditions
from s3proxy.store.multipart import RequestedPart, multipart_etag
from server.runtime import Runtime, open_runtime

T = TypeVar("T")
KiB, MiB = 1024, 1024 * 1024
ACCOUNT = "acct-fsync-order"
CONFIG = """
[storage]
sync = "full"
[versioning]
new_buckets = "Off"
[limits]
min_part_size = 1048576
"""
BLOB_ID = re.compile(r"[0-9a-f]{32}")


# -- the event log ----------------------------------------------------------------------------


@dataclass
class Event:
    kind: str  # fsync write create mkdir rename link unlink commit begin ack
    path: str  # the file or directory acted on (rename/link: the new name); begin/ack: the operation
    start: int
    end: int
    src: str = ""  # rename/link: the old name
    text: str = ""  # commit: the statements and parameters of the transaction it ends

    def __str__(self) -> str:
        detail = f"{self.src} -> {self.path}" if self.src else self.path
        return f"#{self.start}-{self.end} {self.kind} {detail}"


class Recorder:
    """One global order of events: a counter taken under a lock when a call starts and again
    when it returns (an fsync covers what ended before it started, and is durable once it ends)."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._ticks = itertools.count()

    def tick(self) -> int:
        with self._lock:
            return next(self._ticks)

    def mine(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def add(self, event: Event) -> None:
        if self.mine(event.path) or self.mine(event.src) or event.kind in ("commit", "begin", "ack"):
            with self._lock:
                self.events.append(event)

    def mark(self, kind: str, name: str) -> None:
        now = self.tick()
        self.add(Event(kind, name, now, now))

    async def op(self, name: str, awaitable: Awaitable[T]) -> T:
        """Await one engine call: its acknowledgement is the moment it returns."""
        self.mark("begin", name)
        result = await awaitable
        self.mark("ack", name)
        return result

    def ordered(self) -> list[Event]:
        with self._lock:
            return sorted(self.events, key=lambda e: (e.start, e.end))


def _fd_path(fd: int) -> str:
    try:
        return _REAL_READLINK(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def _name(path: Any, dir_fd: int | None = None) -> str:
    """The canonical path of a name (its parent resolved; the name itself may not exist)."""
    text = os.fsdecode(os.fspath(path))
    if dir_fd is not None and not os.path.isabs(text):
        text = os.path.join(_fd_path(dir_fd), text)
    text = os.path.abspath(text)
    return os.path.join(os.path.realpath(os.path.dirname(text)), os.path.basename(text))


_REAL_READLINK = os.readlink


class RecordingConnection(sqlite3.Connection):
    """Every connection the test opens: what each transaction ran, and its COMMIT."""

    recorder: ClassVar[Recorder | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._statements: list[str] = []

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        verb = sql.strip().upper()
        if verb in ("COMMIT", "END") and self.recorder is not None:
            start = self.recorder.tick()
            cursor = super().execute(sql, parameters)
            text, self._statements = "\n".join(self._statements), []
            self.recorder.add(Event("commit", "", start, self.recorder.tick(), text=text))
            return cursor
        if verb == "ROLLBACK":
            self._statements = []
        else:
            self._statements.append(f"{sql} {parameters!r}")
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        rows = list(seq_of_parameters)
        self._statements.append(f"{sql} {rows!r}")
        return super().executemany(sql, rows)


def install_recorder(monkeypatch: pytest.MonkeyPatch, recorder: Recorder) -> None:
    """Wrap the `os` functions blobs.py, reserve.py and core/db.py call through the module
    (`os.fsync`, not `from os import fsync`), and make every new SQLite connection a
    RecordingConnection."""
    real = {name: getattr(os, name) for name in _WRAPPED}

    def fd_call(kind: str, name: str) -> Callable[..., Any]:
        def wrapper(fd: int, *args: Any, **kwargs: Any) -> Any:
            start = recorder.tick()
            result = real[name](fd, *args, **kwargs)
            path = _fd_path(fd)
            recorder.add(Event(kind, path, start, recorder.tick()))
            return result

        return wrapper

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        start = recorder.tick()
        fd = real["open"](path, flags, mode, dir_fd=dir_fd)
        if flags & os.O_CREAT:
            recorder.add(Event("create", _fd_path(fd), start, recorder.tick()))
        return fd

    def two_names(kind: str, name: str) -> Callable[..., Any]:
        def wrapper(src: Any, dst: Any, **kwargs: Any) -> Any:
            old = _name(src, kwargs.get("src_dir_fd"))
            new = _name(dst, kwargs.get("dst_dir_fd"))
            start = recorder.tick()
            result = real[name](src, dst, **kwargs)
            recorder.add(Event(kind, new, start, recorder.tick(), src=old))
            return result

        return wrapper

    def one_name(kind: str, name: str) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            target = _name(path, kwargs.get("dir_fd"))
            start = recorder.tick()
            result = real[name](path, *args, **kwargs)
            recorder.add(Event(kind, target, start, recorder.tick()))
            return result

        return wrapper

    monkeypatch.setattr(os, "fsync", fd_call("fsync", "fsync"))
    monkeypatch.setattr(os, "fdatasync", fd_call("fsync", "fdatasync"))
    for name in ("write", "pwrite", "writev"):
        monkeypatch.setattr(os, name, fd_call("write", name))
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "rename", two_names("rename", "rename"))
    monkeypatch.setattr(os, "replace", two_names("rename", "replace"))
    monkeypatch.setattr(os, "link", two_names("link", "link"))
    monkeypatch.setattr(os, "mkdir", one_name("mkdir", "mkdir"))
    monkeypatch.setattr(os, "unlink", one_name("unlink", "unlink"))
    monkeypatch.setattr(os, "remove", one_name("unlink", "remove"))

    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", RecordingConnection)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(RecordingConnection, "recorder", recorder)


_WRAPPED = (
    "fsync", "fdatasync", "write", "pwrite", "writev", "open", "rename", "replace", "link", "mkdir", "unlink", "remove",
)  # fmt: skip


# -- the rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One acknowledged operation: `token` is a string its COMMIT's statements carry (a blob id,
    a key, an upload id); `blobs` the blobs that COMMIT references (new or shared), each of
    which must be durable before it; `freed` blobs it drops, unlinked only once it is durable."""

    name: str
    token: str
    blobs: tuple[str, ...] = ()
    freed: tuple[str, ...] = ()


def blob_path(data_dir: str, blob_id: str) -> str:
    return os.path.join(data_dir, "blobs", blob_id[:2], blob_id[2:4], blob_id)


def _fsynced(events: list[Event], path: str, after: int, before: int) -> bool:
    return any(e.kind == "fsync" and e.path == path and e.start > after and e.end < before for e in events)


def _blob_durable(events: list[Event], data_dir: str, blob_id: str, deadline: int, who: str) -> list[str]:
    """The blob's bytes, its name and every directory made for that name, durable before `deadline`."""
    final = blob_path(data_dir, blob_id)
    short = f"{who}: blob {blob_id[:8]}"
    moves = [e for e in events if e.kind in ("rename", "link") and e.path == final and e.end < deadline]
    if not moves:
        return [f"{short}: not renamed or linked to blobs/{blob_id[:2]}/{blob_id[2:4]}/ before the COMMIT"]
    move = moves[-1]
    names = {move.src, final}
    problems = []
    last_write = max(
        (e.end for e in events if e.kind == "write" and e.path in names and e.start < deadline), default=-1
    )
    if not _fsynced(events, move.src, last_write, move.start) and not _fsynced(
        events, final, last_write, move.start
    ):
        problems.append(f"{short}: no fsync of its file after its last write and before its rename")
    directory = os.path.dirname(final)
    if not _fsynced(events, directory, move.end, deadline):
        problems.append(
            f"{short}: no fsync of the directory {os.path.relpath(directory, data_dir)}/ after the rename"
            " and before the COMMIT that references it"
        )
    for made in events:
        if made.kind == "mkdir" and made.end < deadline and (final.startswith(made.path + os.sep)):
            parent = os.path.dirname(made.path)
            if not _fsynced(events, parent, made.end, deadline):
                problems.append(
                    f"{short}: the new directory {os.path.relpath(made.path, data_dir)}/ is not made durable"
                    f" (no fsync of {os.path.relpath(parent, data_dir)}/ after the mkdir, before the COMMIT)"
                )
    return problems


def check_ordering(events: list[Event], data_dir: str, wal: str, expected: list[Expected]) -> list[str]:
    """Every way the log breaks the rule, in words; [] when it holds."""
    events = sorted(events, key=lambda e: (e.start, e.end))
    problems: list[str] = []
    for op in expected:
        begins = [e for e in events if e.kind == "begin" and e.path == op.name]
        acks = [e for e in events if e.kind == "ack" and e.path == op.name]
        if not begins or not acks:
            problems.append(f"{op.name}: no acknowledgement recorded")
            continue
        begin, ack = begins[0], acks[0]
        commits = [
            e
            for e in events
            if e.kind == "commit" and op.token in e.text and e.start > begin.end and e.end < ack.start
        ]
        if not commits:
            problems.append(f"{op.name}: no COMMIT referencing {op.token} before the acknowledgement")
            continue
        first, last = commits[0], commits[-1]
        for blob_id in op.blobs:
            problems += _blob_durable(events, data_dir, blob_id, first.start, op.name)
        wal_syncs = [
            e
            for e in events
            if e.kind == "fsync" and e.path == wal and e.start > last.end and e.end < ack.start
        ]
        if not wal_syncs:
            problems.append(f"{op.name}: no fsync of the WAL after its COMMIT and before the acknowledgement")
            continue
        for blob_id in op.freed:
            for gone in (e for e in events if e.kind == "unlink" and e.path == blob_path(data_dir, blob_id)):
                if gone.start < wal_syncs[0].end:
                    problems.append(
                        f"{op.name}: freed blob {blob_id[:8]} unlinked before the WAL fsync that drops its reference"
                    )
    # Whatever the operation, no COMMIT may name a blob that is not durable yet.
    named = {os.path.basename(e.path) for e in events if e.kind in ("rename", "link")}
    for commit in (e for e in events if e.kind == "commit"):
        for blob_id in sorted(set(BLOB_ID.findall(commit.text)) & named):
            problems += _blob_durable(events, data_dir, blob_id, commit.start, f"COMMIT #{commit.start}")
    return list(dict.fromkeys(problems))


# -- the engine in-process --------------------------------------------------------------------


@dataclass
class Engine:
    runtime: Runtime
    recorder: Recorder
    bucket: Bucket
    expected: list[Expected] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def data_dir(self) -> str:
        return os.path.realpath(self.runtime.config.storage.data_dir)

    @property
    def wal(self) -> str:
        return os.path.realpath(self.runtime.db.wal_path)

    async def put(self, key: str, data: bytes, name: str | None = None) -> tuple[str, ...]:
        """A PUT as the S3 layer makes it (256 KiB reads); returns the version's blob ids."""
        name = name or f"PUT {key} ({len(data)} bytes)"

        async def upload():
            writer = self.store.new_writer()
            for start in range(0, len(data), 256 * KiB):
                await writer.write(data[start : start + 256 * KiB])
            await writer.finish()
            return await self.store.put_object(self.bucket, key, writer, ObjectMeta())

        version = await self.recorder.op(name, upload())
        blob_ids = tuple(version.blob_ids)
        self.expected.append(Expected(name, blob_ids[0] if blob_ids else key, blob_ids))
        return blob_ids

    def check(self) -> list[str]:
        return check_ordering(self.recorder.ordered(), self.data_dir, self.wal, self.expected)


def open_engine(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    record_start: bool = False,
    direct_write_bytes: int = 16 * MiB,
) -> Engine:
    """The runtime as `folio serve` opens it (database, then store, then recovery) on a fresh
    data directory; recording starts before it when `record_start`. `direct_write_bytes`:
    how much of each blob is written with O_DIRECT before the rest goes through the page
    cache ([storage] direct_write_bytes; 0: none)."""
    config_file = tmp_path / "folio.toml"
    config_file.write_text(
        CONFIG.replace('sync = "full"', f'sync = "full"\ndirect_write_bytes = {direct_write_bytes}')
    )
    config: Config = load_config(config_file, data_dir=str(tmp_path / "data"), environ={})
    assert config.storage.sync == "full" and config.storage.inline_threshold == 64 * KiB
    recorder = Recorder(tmp_path)
    install_recorder(monkeypatch, recorder)  # before the database opens its connections
    runtime = open_runtime(config)
    if not record_start:
        recorder.events.clear()
    return Engine(runtime, recorder, bucket=None)  # type: ignore[arg-type]


def run(engine: Engine, scenario: Callable[[Engine], Awaitable[None]]) -> None:
    async def main() -> None:
        engine.bucket, _ = await engine.store.create_bucket(ACCOUNT, "fsync-order")
        await scenario(engine)

    try:
        asyncio.run(main())
    finally:
        engine.runtime.close()


def payload(size: int, seed: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[seed : seed + size]


async def every_write_path(engine: Engine) -> None:
    """PUTs (multi-MiB with an odd tail, odd, block-aligned, inline), an overwrite, a multipart
    upload (a large part and a small one), copies, deletes."""
    store, rec, bucket = engine.store, engine.recorder, engine.bucket
    big = await engine.put("big", payload(3 * MiB + 5, 1))
    odd = await engine.put("odd", payload(100_001, 2))
    await engine.put("aligned", payload(2 * MiB, 3))
    await engine.put("inline-key-7f3a", payload(1000, 4))
    # Overwrite (unversioned bucket): the old blob is freed once the new version is durable.
    name = "PUT odd again (overwrite)"
    new_odd = await engine.put("odd", payload(200_003, 5), name)
    engine.expected[-1] = replace(engine.expected[-1], freed=odd)
    await _wait_gone(engine, odd)

    upload = await rec.op(
        "CreateMultipartUpload", store.create_upload(bucket, "multi", ObjectMeta(), None, None)
    )
    engine.expected.append(Expected("CreateMultipartUpload", upload.id))
    part_ids = []
    for number, size in ((1, MiB + 7), (2, 500)):  # the small part is written as a blob too
        writer = store.new_writer()
        await writer.write(payload(size, number))
        await writer.finish()
        name = f"UploadPart {number} ({size} bytes)"
        await rec.op(name, store.put_part(bucket, "multi", upload.id, number, writer, {}))
        _upload, parts, _truncated = store.list_parts(
            bucket, "multi", upload.id, after=number - 1, max_parts=1
        )
        blob_id = parts[0].segments[0].blob_id
        part_ids.append(blob_id)
        engine.expected.append(Expected(name, blob_id, (blob_id,)))
    _upload, parts, _ = store.list_parts(bucket, "multi", upload.id, after=0, max_parts=10)
    requested = [RequestedPart(p.part_number, p.etag, {}) for p in parts]
    complete = store.complete_upload(
        bucket, "multi", upload.id, requested, lambda _u, chosen: (multipart_etag(chosen), {})
    )
    version = await rec.op("CompleteMultipartUpload", complete)
    assert tuple(version.blob_ids) == tuple(part_ids)
    engine.expected.append(Expected("CompleteMultipartUpload", upload.id, tuple(part_ids)))

    for source, dest, blob_ids in (("big", "big-copy", big), ("inline-key-7f3a", "inline-copy-9c1e", ())):
        name = f"CopyObject {source} -> {dest}"
        copied = copy_engine.copy_object(
            store,
            source_bucket=bucket,
            source_key=source,
            source_version_id=None,
            dest_bucket=bucket,
            dest_key=dest,
            meta=None,
            conditions=copy_engine.CopyConditions(),
            dest_conditions=WriteConditions(),
        )
        version, _source = await rec.op(name, copied)
        assert tuple(version.blob_ids) == blob_ids  # shared, not rewritten
        engine.expected.append(Expected(name, dest, blob_ids))

    # Deletes: the shared blob stays (the copy holds it), the aligned one's is freed.
    await rec.op("DeleteObject big", store.delete_object(bucket, "big"))
    engine.expected.append(Expected("DeleteObject big", "big"))
    assert store.blobs.exists(big[0])
    aligned = store.head_object(bucket, "aligned").blob_ids
    await rec.op("DeleteObject aligned", store.delete_object(bucket, "aligned"))
    engine.expected.append(Expected("DeleteObject aligned", "aligned", freed=tuple(aligned)))
    await _wait_gone(engine, tuple(aligned))
    assert new_odd and store.blobs.exists(new_odd[0])


async def _wait_gone(engine: Engine, blob_ids: tuple[str, ...]) -> None:
    """A freed blob is removed on a worker thread after the acknowledgement."""
    for _ in range(500):
        if not any(engine.store.blobs.exists(b) for b in blob_ids):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"freed blobs {blob_ids} still on disk")


@pytest.fixture(params=[16 * MiB, MiB, 0], ids=["direct", "direct-then-page-cache", "page-cache"])
def engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Engine]:
    """Every way of writing blob bytes: O_DIRECT (the default for these sizes), O_DIRECT for
    the first MiB and the page cache after it (the big PUT switches), the page cache only."""
    yield open_engine(tmp_path, monkeypatch, direct_write_bytes=request.param)


def _report(problems: list[str], events: list[Event]) -> str:
    return "\n".join(problems) + "\n\nlog:\n" + "\n".join(str(e) for e in events if e.kind != "write")


# -- the tests --------------------------------------------------------------------------------


def test_every_acknowledged_write_was_durable_first(engine: Engine) -> None:
    run(engine, every_write_path)
    problems = engine.check()
    assert not problems, _report(problems, engine.recorder.ordered())
    events = engine.recorder.ordered()
    # The checker saw what it was meant to: every operation acknowledged, the new blobs'
    # directories made during the run, and the odd-sized blob fsynced once, after its last
    # write (with O_DIRECT its tail went through a second descriptor; one fsync covers both).
    assert len(engine.expected) == 13
    assert sum(e.kind == "ack" for e in events) == len(engine.expected)
    assert any(e.kind == "mkdir" and "/blobs/" in e.path for e in events)
    freed = [blob_path(engine.data_dir, b) for op in engine.expected for b in op.freed]
    assert len(freed) == 2 and all(any(e.kind == "unlink" and e.path == f for e in events) for f in freed)
    odd = next(op for op in engine.expected if op.name.startswith("PUT odd (")).blobs[0]
    tmp = os.path.join(engine.data_dir, "tmp", odd)
    fsyncs_of_odd = sum(e.kind == "fsync" and e.path == tmp for e in events)
    assert fsyncs_of_odd == 1
    # Whichever way they were written, the bytes on disk are the bytes sent.
    big = next(op for op in engine.expected if op.name.startswith("PUT big (")).blobs[0]
    with open(blob_path(engine.data_dir, big), "rb") as f:
        assert f.read() == payload(3 * MiB + 5, 1)


def test_a_new_data_directory_makes_its_blob_directories_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the very first start: every directory on the way to an acknowledged blob (the data
    directory and blobs/ included, when Folio makes them) has its parent fsynced before the
    COMMIT that references the blob."""
    engine = open_engine(tmp_path, monkeypatch, record_start=True)

    async def one_put(e: Engine) -> None:
        await e.put("first", payload(100 * KiB, 7))

    run(engine, one_put)
    problems = engine.check()
    assert not problems, _report(problems, engine.recorder.ordered())


# -- the checker bites ------------------------------------------------------------------------


async def _one_blob_put(engine: Engine) -> None:
    await engine.put("one", payload(320 * KiB, 9))  # block-aligned: no tail descriptor


def test_checker_reports_a_missing_directory_fsync(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blobs_module, "_fsync_dir", lambda _path: None)
    run(engine, _one_blob_put)
    problems = engine.check()
    assert any("no fsync of the directory blobs/" in p for p in problems), problems
    assert any("is not made durable" in p for p in problems), problems  # ensure_dir's fsyncs went too


def test_checker_reports_a_missing_wal_fsync(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.db, "_fsync_path", lambda _path: None)
    run(engine, _one_blob_put)
    problems = engine.check()
    assert (
        "PUT one (327680 bytes): no fsync of the WAL after its COMMIT and before the acknowledgement"
        in problems
    )


def test_checker_reports_a_file_fsynced_after_its_rename(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same steps in the wrong order: renamed first, fsynced after."""

    def publish_rename_first(self: BlobFile) -> str:
        assert self.fd is not None
        if self._stage is not None:
            self._flush_stage()
            self._release_stage()
        final = self.store.path_for(self.blob_id)
        self.store.ensure_dir(final.parent)
        os.rename(self.tmp_path, final)
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        _fsync_dir(final.parent)
        self.published = True
        return self.blob_id

    monkeypatch.setattr(BlobFile, "_publish", publish_rename_first)
    run(engine, _one_blob_put)
    problems = engine.check()
    assert any("no fsync of its file after its last write and before its rename" in p for p in problems), (
        problems
    )


def test_checker_reports_a_commit_before_the_directory_fsync(engine: Engine) -> None:
    """A good log with the COMMIT moved in front of the directory fsync breaks the rule."""
    run(engine, _one_blob_put)
    events = engine.recorder.ordered()
    assert engine.check() == []
    blob_id = engine.expected[0].blobs[0]
    directory = os.path.dirname(blob_path(engine.data_dir, blob_id))
    dir_sync = next(e for e in events if e.kind == "fsync" and e.path == directory)
    commit = next(e for e in events if e.kind == "commit" and blob_id in e.text)
    moved = [replace(e, start=dir_sync.end, end=dir_sync.end) if e is commit else e for e in events]
    problems = check_ordering(moved, engine.data_dir, engine.wal, engine.expected)
    assert any("no fsync of the directory" in p and "before the COMMIT" in p for p in problems), problems
