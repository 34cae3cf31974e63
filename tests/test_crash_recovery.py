"""Crash safety of the storage engine, through a real server process: SIGKILL in the
middle of concurrent PUTs and overwrites, restart, and check that every acknowledged
write survived whole, nothing is torn, and no temporary or unreferenced blob is left.
Also: SIGTERM lets an upload in flight finish, within a bounded grace period."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.server_db import server_db

KIB = 1024
MIB = 1024 * 1024
SMALL, MEDIUM, LARGE = 1 * KIB, 200 * KIB, 3 * MIB  # inline, blob, bigger blob (several write pieces)
BUCKET = "crash-bucket"
GRACE_SECONDS = 3.0

# Retries would blur what was acknowledged; a dead server must fail fast.
NO_RETRIES = Config(
    retries={"total_max_attempts": 1}, max_pool_connections=32, connect_timeout=2, read_timeout=30
)


def content(key: str, generation: int, size: int) -> bytes:
    """The bytes of write `generation` to `key`: reproducible, different for every write."""
    return random.Random(f"{key}#{generation}").randbytes(size)


@dataclass
class Write:
    key: str
    generation: int
    size: int
    started: float | None = None
    finished: float | None = None  # when the 200 arrived
    outcome: str = "not sent"  # "acknowledged", "failed" (in flight or refused), "not sent"
    error: str = ""

    @property
    def data(self) -> bytes:
        return content(self.key, self.generation, self.size)


def planned_writes() -> list[Write]:
    """50 writes: hot keys overwritten repeatedly (one alternating inline and blob sizes),
    and single writes of every size; each key's generations are issued in order."""
    per_key: list[list[Write]] = []
    hot = {
        "hot/small": [SMALL],
        "hot/medium": [MEDIUM],
        "hot/large": [LARGE],
        "hot/mixed": [SMALL, MEDIUM, LARGE],
    }
    counts = {"hot/small": 6, "hot/medium": 6, "hot/large": 5, "hot/mixed": 8}
    for key, sizes in hot.items():
        per_key.append([Write(key, g, sizes[g % len(sizes)]) for g in range(counts[key])])
    for i in range(25):
        per_key.append([Write(f"cold/{i:02d}", 0, (SMALL, MEDIUM, LARGE)[i % 3])])
    rng = random.Random(20240607)
    ordered: list[Write] = []
    while per_key:
        queue = rng.choice(per_key)
        ordered.append(queue.pop(0))
        if not queue:
            per_key.remove(queue)
    assert len(ordered) == 50
    return ordered


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., FolioProcess]]:
    """Dedicated servers on their own data directories, always stopped at the end."""
    started: list[FolioProcess] = []

    def make(config_text: str = "") -> FolioProcess:
        server = FolioProcess(data_dir=tmp_path / f"data{len(started)}", config_text=config_text)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def check_blob_files_match_the_blobs_table(server: FolioProcess) -> None:
    """With the server stopped: blobs/ holds exactly the blobs the table lists, at their
    recorded sizes, and each row's refcount is the number of object versions using it."""
    data_dir = server.data_dir
    with server_db(server) as db:
        rows = {
            blob_id: (size, refcount)
            for blob_id, size, refcount in db.execute("SELECT id, size, refcount FROM blobs")
        }
        uses: dict[str, int] = {}
        for (segments,) in db.execute("SELECT segments FROM objects WHERE segments IS NOT NULL"):
            for blob_id, *_ in json.loads(segments):  # [blob_id, length(, offset)]
                uses[blob_id] = uses.get(blob_id, 0) + 1
    on_disk = {p.name: p for p in _files_under(data_dir / "blobs")}
    unreferenced = sorted(set(on_disk) - set(rows))
    missing = sorted(set(rows) - set(on_disk))
    assert not unreferenced, f"blob files no row references: {unreferenced}"
    assert not missing, f"blob rows whose file is gone: {missing}"
    for blob_id, (size, refcount) in rows.items():
        path = on_disk[blob_id]
        assert path.relative_to(data_dir / "blobs").parts == (blob_id[:2], blob_id[2:4], blob_id)
        assert path.stat().st_size == size, (
            f"blob {blob_id}: {path.stat().st_size} bytes on disk, {size} recorded"
        )
        assert refcount == uses.get(blob_id, 0), (
            f"blob {blob_id}: refcount {refcount}, used {uses.get(blob_id, 0)}"
        )
    assert set(uses) <= set(rows), f"objects point at blobs with no row: {sorted(set(uses) - set(rows))}"


def test_sigkill_during_concurrent_puts_keeps_every_acknowledged_write_whole(
    server_factory: Callable[..., FolioProcess],
) -> None:
    server = server_factory().start()
    s3 = make_s3_client(server, config=NO_RETRIES)
    s3.create_bucket(Bucket=BUCKET)
    writes = planned_writes()
    lock = threading.Lock()
    acknowledged = 0
    kill_now = threading.Event()
    killed = threading.Event()

    def put(write: Write) -> None:
        nonlocal acknowledged
        if killed.is_set():
            return  # the server is gone: this write is never sent
        write.started = time.monotonic()
        try:
            s3.put_object(Bucket=BUCKET, Key=write.key, Body=write.data)
        except Exception as exc:  # noqa: BLE001 - connection errors are the point of this test
            write.outcome, write.error = "failed", repr(exc)
            return
        write.finished = time.monotonic()
        write.outcome = "acknowledged"
        with lock:
            acknowledged += 1
            if acknowledged == 15:
                kill_now.set()

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(put, w) for w in writes]
        assert kill_now.wait(60), f"15 PUTs were never acknowledged:\n{server.log()}"
        in_flight_at_kill = [w for w in writes if w.started is not None and w.outcome == "not sent"]
        tmp_at_kill = _files_under(server.data_dir / "tmp")
        server.kill()
        killed.set()
        for future in futures:
            future.result()

    acked = [w for w in writes if w.outcome == "acknowledged"]
    assert len(acked) >= 15
    assert in_flight_at_kill, "no request was in flight when the server was killed: the test proved nothing"
    # Not an assertion (timing decides it), but it tells the reader what recovery had to clean.
    print(f"killed with {len(in_flight_at_kill)} requests in flight, {len(tmp_at_kill)} files in tmp/")

    server.start()
    assert _files_under(server.data_dir / "tmp") == [], "start-up left files in tmp/"
    s3 = make_s3_client(server, config=NO_RETRIES)

    by_key: dict[str, list[Write]] = {}
    for w in writes:
        by_key.setdefault(w.key, []).append(w)
    present: set[str] = set()
    for key, key_writes in by_key.items():
        try:
            got = s3.get_object(Bucket=BUCKET, Key=key)
            body = got["Body"].read()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchKey", exc.response
            body = None
        key_acked = [w for w in key_writes if w.outcome == "acknowledged"]
        if body is None:
            assert not key_acked, (
                f"{key}: acknowledged write(s) {[w.generation for w in key_acked]} were lost"
            )
            continue
        present.add(key)
        assert got["ContentLength"] == len(body)
        assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', f"{key}: ETag does not describe the bytes"
        matching = [w for w in key_writes if w.outcome != "not sent" and w.data == body]
        assert matching, f"{key}: {len(body)} bytes that no write sent (torn or mixed object)"
        final = matching[0]
        # Every acknowledged write is the final content or was superseded by a write that
        # had not completed before it started (so it may legitimately have landed after it).
        for w in key_acked:
            superseded = final is w or final.finished is None or final.finished > (w.started or 0)
            assert superseded, (
                f"{key}: acknowledged generation {w.generation} was replaced by generation "
                f"{final.generation}, which had completed before it started"
            )

    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert listed == present

    assert server.stop() == 0, server.log()
    assert _files_under(server.data_dir / "tmp") == []
    check_blob_files_match_the_blobs_table(server)


def signed_put_head(server: FolioProcess, key: str, body: bytes) -> bytes:
    """The request line and headers of a SigV4-signed PUT (payload sha256 signed)."""
    url = f"{server.s3_url}/{BUCKET}/{key}"
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Length": str(len(body))})
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(request)
    host = urlsplit(url).netloc
    lines = [f"PUT /{BUCKET}/{key} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(15)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), data


def connection_refused(server: FolioProcess) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", server.s3_port), timeout=2):
            return False
    except OSError:
        return True


def test_sigterm_lets_an_upload_in_flight_finish_and_exits_zero(
    server_factory: Callable[..., FolioProcess],
) -> None:
    server = server_factory(f"[server]\nshutdown_grace_seconds = {GRACE_SECONDS}\n").start()
    make_s3_client(server).create_bucket(Bucket=BUCKET)
    body = content("sigterm", 0, 2 * MIB)
    sock = socket.create_connection(("127.0.0.1", server.s3_port))
    try:
        sock.sendall(signed_put_head(server, "in-flight", body))
        sock.sendall(body[: MIB + 123])
        time.sleep(0.3)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None, "the server exited with an upload still in flight"
        assert connection_refused(server), "the server still accepts connections after SIGTERM"
        sock.sendall(body[MIB + 123 :])
        status, response = read_response(sock)
    finally:
        sock.close()
    assert status == 200, response
    assert server.proc.wait(GRACE_SECONDS + 10) == 0, server.log()

    server.start()
    got = make_s3_client(server).get_object(Bucket=BUCKET, Key="in-flight")
    assert got["Body"].read() == body


def test_sigterm_does_not_wait_past_the_grace_period_for_a_stalled_upload(
    server_factory: Callable[..., FolioProcess],
) -> None:
    server = server_factory(f"[server]\nshutdown_grace_seconds = {GRACE_SECONDS}\n")
    # uvicorn logs the upload it cancels when the grace period ends with a traceback: the
    # end-of-run log check (tests/test_zz_server_logs.py) skips this server's log.
    server.expect_tracebacks = True
    server.start()
    make_s3_client(server).create_bucket(Bucket=BUCKET)
    body = content("stalled", 0, 3 * MIB)
    sock = socket.create_connection(("127.0.0.1", server.s3_port))
    try:
        sock.sendall(signed_put_head(server, "stalled", body))
        sock.sendall(body[: 2 * MIB])  # and never the rest
        time.sleep(0.3)
        assert server.proc is not None
        began = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(GRACE_SECONDS + 10)
        waited = time.monotonic() - began
    finally:
        sock.close()
    assert waited < GRACE_SECONDS + 5, f"shutdown took {waited:.1f}s with a {GRACE_SECONDS}s grace period"
    assert code == 0, server.log()

    server.start()
    s3 = make_s3_client(server)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=BUCKET, Key="stalled")
    assert excinfo.value.response["Error"]["Code"] == "404"
    assert _files_under(server.data_dir / "tmp") == []
    server.stop()
    check_blob_files_match_the_blobs_table(server)
