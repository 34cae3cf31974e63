"""Issue 15's upload benchmark: one 1 GiB file uploaded through the dashboard's endpoints
(webui/uploads.py) against `aws s3 cp` of the same kind of file to Folio's S3 port.

`dashboard_upload` does what `webui/static/upload.js` does for a file above one part:
a dashboard session (sign-up on the JSON API, then the CSRF token from the upload page),
`POST /uploads/{bucket}/multipart`, the parts in the server's part size, PARTS_AT_ONCE at a
time, each read from the file and sent with its Content-MD5 (the answered ETag checked),
then `.../complete`; timed from the create to the end of the complete, as `mpu1g` is.
`aws_cp` times the whole `aws s3 cp` command (its own defaults: 8 MiB parts, 10 at a
time, the checksums it sends by default), start-up included, as a user would wait for it.

Each job writes its 1 GiB file of random bytes to a temporary directory first (untimed,
so it is in the page cache for both) and removes it and the object afterwards. Both run
as jobs of the load generator (`bench/loadgen.py`); the orchestrator watches the server's
RSS meanwhile (`watch_rss`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.http_client import HttpConnection, Response, connect
from bench.loadgen import Endpoint, Reconnecting, Recorder, _cpu_seconds, _delete, _summary
from bench.sigv4_client import encode_query

PARTS_AT_ONCE = 3  # upload.js: PARTS_PER_FILE
PASSWORD = "bench-dashboard-password"
_WRITE_PIECE = 8 << 20


def _write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, _WRITE_PIECE)
            handle.write(os.urandom(n))
            left -= n


def _failure(what: str, response: Response | None = None) -> dict[str, Any]:
    sample: dict[str, Any] = {"what": what}
    if response is not None:
        sample |= {"status": response.status, "body": response.body[:600].decode("utf-8", "replace")}
    return {"ops": 0, "errors": 1, "error_samples": [sample]}


class DashboardSession:
    """Requests on the web listener as the dashboard's pages make them: the session cookie
    and, for writes, the CSRF header."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cookie = ""
        self.csrf = ""

    def head(self, method: str, target: str, length: int | None = None, extra: str = "") -> bytes:
        lines = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if self.cookie:
            lines += f"Cookie: session={self.cookie}\r\n"
        if self.csrf and method != "GET":
            lines += f"X-CSRF-Token: {self.csrf}\r\n"
        if length is not None:
            lines += f"Content-Length: {length}\r\n"
        return (lines + extra + "\r\n").encode()

    async def json(self, conn: HttpConnection, method: str, target: str, body: Any = None) -> Response:
        raw = json.dumps(body).encode() if body is not None else b""
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        length = len(raw) if method != "GET" else None
        return await conn.request(self.head(method, target, length, kind), raw, keep_body=True)

    async def sign_up(self, conn: HttpConnection) -> tuple[str, dict[str, Any]]:
        """A new account and its session; returns its default bucket and the sign-up answer."""
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        response = await self.json(conn, "POST", "/api/auth/signup", {"email": email, "password": PASSWORD})
        found = re.search(r"^set-cookie:\s*session=([^;\s]+)", response.head, re.M | re.I)
        if response.status != 201 or not found:
            raise RuntimeError(f"sign-up answered {response.status}: {response.body[:300]!r}")
        self.cookie = found.group(1)
        answer = json.loads(response.body)
        bucket = answer["defaultBucket"]
        page = await conn.request(self.head("GET", f"/buckets/{bucket}/upload"), keep_body=True)
        token = re.search(rb'data-csrf="([0-9a-f]+)"', page.body)
        if page.status != 200 or not token:
            raise RuntimeError(f"the upload page answered {page.status} without a CSRF token")
        self.csrf = token.group(1).decode()
        return bucket, answer


async def _dashboard_parts(
    session: DashboardSession, path: Path, size: int, bucket: str, key: str, latencies: list[int]
) -> tuple[str, int]:
    """The upload itself (what the job times): returns the object's ETag and the part count."""
    conn = await connect(session.host, session.port)
    query = encode_query({"key": key})
    try:
        created = await session.json(
            conn,
            "POST",
            f"/uploads/{bucket}/multipart?{query}",
            {"size": size, "contentType": "application/octet-stream"},
        )
        if created.status != 201:
            raise RuntimeError(f"create answered {created.status}: {created.body[:300]!r}")
        plan = json.loads(created.body)
        upload_id, part_size = plan["uploadId"], int(plan["partSize"])
        count = max(1, -(-size // part_size))
        numbers = iter(range(1, count + 1))
        etags: dict[int, str] = {}
        fd = os.open(path, os.O_RDONLY)

        def read_and_hash(number: int) -> tuple[bytes, bytes]:
            # One thread call per part: pread and MD5 both release the GIL on large buffers.
            start = (number - 1) * part_size
            data = os.pread(fd, min(part_size, size - start), start)
            return data, hashlib.md5(data).digest()

        async def worker() -> None:
            part_conn = await connect(session.host, session.port)
            try:
                for number in numbers:
                    data, digest = await asyncio.to_thread(read_and_hash, number)
                    md5 = base64.b64encode(digest).decode()
                    head = session.head(
                        "PUT",
                        f"/uploads/{bucket}/multipart/{upload_id}/{number}?{query}",
                        len(data),
                        f"Content-MD5: {md5}\r\n",
                    )
                    t0 = time.perf_counter_ns()
                    response = await part_conn.request(head, data, keep_body=True)
                    latencies.append(time.perf_counter_ns() - t0)
                    if response.status != 200 or json.loads(response.body)["etag"] != digest.hex():
                        raise RuntimeError(
                            f"part {number} answered {response.status}: {response.body[:300]!r}"
                        )
                    etags[number] = digest.hex()
            finally:
                part_conn.close()

        try:
            await asyncio.gather(*(worker() for _ in range(min(PARTS_AT_ONCE, count))))
        finally:
            os.close(fd)
        parts = [{"partNumber": n, "etag": etags[n]} for n in sorted(etags)]
        conn.close()  # idle through the parts: the server may have closed it (keep-alive timeout)
        conn = await connect(session.host, session.port)
        done = await session.json(
            conn, "POST", f"/uploads/{bucket}/multipart/{upload_id}/complete?{query}", {"parts": parts}
        )
        if done.status != 200:
            raise RuntimeError(f"complete answered {done.status}: {done.body[:300]!r}")
        expected = hashlib.md5(b"".join(bytes.fromhex(etags[n]) for n in sorted(etags))).hexdigest()
        etag = json.loads(done.body)["etag"]
        if etag != f"{expected}-{count}":
            raise RuntimeError(f"the object's ETag {etag} is not the parts' {expected}-{count}")
        return etag, count
    finally:
        conn.close()


async def _delete_with_keys(ep: Endpoint, access_key: str, secret_key: str, bucket: str, key: str) -> None:
    """Untimed clean-up over S3 with the account's own keys (best effort)."""
    owner = Endpoint(ep.host, ep.port, access_key, secret_key, ep.region, ep.web_port)
    conn = Reconnecting(owner)
    try:
        await _delete(owner, conn, bucket, key, Recorder())
    finally:
        conn.close()


async def job_dashboard_upload(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    if not ep.web_port:
        return _failure("this target has no web listener") | {"unsupported": True}
    size = int(job["size"])
    workdir = Path(tempfile.mkdtemp(prefix="folio-bench-upload-"))
    path = workdir / "upload.bin"
    session = DashboardSession(ep.host, ep.web_port)
    try:
        await asyncio.to_thread(_write_random_file, path, size)
        conn = await connect(ep.host, ep.web_port)
        try:
            bucket, account = await session.sign_up(conn)
        finally:
            conn.close()
        rec = Recorder()
        key = job["key"]
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        try:
            _etag, parts = await _dashboard_parts(session, path, size, bucket, key, rec.latencies_ns)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            rec.failure(f"{type(exc).__name__}: {exc}")
            return _summary(rec, time.perf_counter() - t0, _cpu_seconds() - cpu0) | {"ops": 0}
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        await _delete_with_keys(ep, account["accessKey"], account["secretKey"], bucket, key)
        return _summary(rec, elapsed, cpu) | {
            "bytes": size,
            "mb_per_s": size / 1e6 / elapsed,
            "parts": parts,
            "parts_at_once": PARTS_AT_ONCE,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _aws_command() -> str:
    beside = Path(sys.executable).with_name("aws")  # the venv's CLI, else the one on PATH
    return str(beside) if beside.exists() else (shutil.which("aws") or "aws")


async def job_aws_cp(ep: Endpoint, job: dict[str, Any]) -> dict[str, Any]:
    """`aws s3 cp FILE s3://bucket/key` against the S3 port, timed as a whole."""
    size = int(job["size"])
    workdir = Path(tempfile.mkdtemp(prefix="folio-bench-upload-"))
    path = workdir / "upload.bin"
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=ep.access_key,
        AWS_SECRET_ACCESS_KEY=ep.secret_key,
        AWS_DEFAULT_REGION=ep.region,
        AWS_CONFIG_FILE=str(workdir / "no-config"),  # the CLI's defaults, not this machine's
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-credentials"),
    )
    endpoint = f"http://{ep.host}:{ep.port}"
    target = f"s3://{job['bucket']}/{job['key']}"
    try:
        await asyncio.to_thread(_write_random_file, path, size)
        rec = Recorder()
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            _aws_command(), "s3", "cp", str(path), target, "--endpoint-url", endpoint, "--only-show-errors",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        elapsed = time.perf_counter() - t0
        children = os.times()  # the CLI's CPU, as the generator's (it is the client here)
        cpu = children.children_user + children.children_system
        if proc.returncode != 0:
            rec.failure(f"aws s3 cp exited with {proc.returncode}: {(err or out).decode()[-600:]}")
            return _summary(rec, elapsed, cpu) | {"ops": 0}
        rec.latencies_ns.append(int(elapsed * 1e9))
        rm = await asyncio.create_subprocess_exec(
            _aws_command(), "s3", "rm", target, "--endpoint-url", endpoint, "--only-show-errors",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await rm.wait()
        return _summary(rec, elapsed, cpu) | {"bytes": size, "mb_per_s": size / 1e6 / elapsed}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
