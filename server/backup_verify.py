"""Is a restored data directory whole? `folio check` answers that when this Folio has
it (server/check.py: checksums, reference counts, orphans); otherwise the built-in
verification below re-reads every object and compares it with what the database says.

The built-in verification: SQLite's integrity_check; every blob row has its file, of
its size; every object's bytes add up to its size and hash to its ETag (MD5 for a
single PUT; for a multipart object, each part's MD5 and the MD5 of those digests with
the part count); objects whose ETag says nothing about their bytes are checked by
size alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_REPORTED = 100
READ_BYTES = 1024 * 1024


def verify_data_dir(
    data_dir: Path, *, config_path: str | None = None, expected_blobs: dict[str, int] | None = None
) -> dict[str, object]:
    if importlib.util.find_spec("server.check") is not None:
        verdict = run_folio_check(data_dir, config_path)
        if verdict is not None:
            return verdict
    return verify_builtin(data_dir, expected_blobs)


def run_folio_check(data_dir: Path, config_path: str | None) -> dict[str, object] | None:
    """`folio check` on the directory, in its own process, as an operator would run it; its
    exit status is the verdict (non-zero on damage), its messages are passed on to our stderr.
    None when this Folio's command line has no `check` yet."""
    command = [sys.executable, "-m", "server", "check", "--json", "--data-dir", str(data_dir)]
    if config_path:
        command += ["--config", config_path]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 2 and "invalid choice: 'check'" in done.stderr:
        return None
    sys.stderr.write(done.stderr)
    try:
        summary: object = json.loads(done.stdout)
    except ValueError:
        summary = done.stdout.strip().splitlines()[-40:]
    return {
        "verifier": "folio check",
        "clean": done.returncode == 0,
        "exitStatus": done.returncode,
        "summary": summary,
    }


class _Findings:
    def __init__(self) -> None:
        self.problems: list[dict[str, str]] = []
        self.count = 0

    def add(self, problem: str, **where: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append({"problem": problem, **where})


def verify_builtin(data_dir: Path, expected_blobs: dict[str, int] | None = None) -> dict[str, object]:
    findings = _Findings()
    blob_root = data_dir / "blobs"
    conn = sqlite3.connect(f"file:{data_dir / 'folio.db'}?mode=ro", uri=True)
    try:
        verdicts = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if verdicts != ["ok"]:
            findings.add("database integrity_check: " + "; ".join(verdicts[:5]))
        rows = dict(conn.execute("SELECT id, size FROM blobs"))
        for blob_id, size in rows.items():
            try:
                actual = _blob_path(blob_root, blob_id).stat().st_size
            except FileNotFoundError:
                findings.add("blob file missing", blob=blob_id)
                continue
            if actual != size:
                findings.add(f"blob is {actual} bytes, the database says {size}", blob=blob_id)
        for blob_id in expected_blobs or {}:
            if blob_id not in rows:
                findings.add("blob in the backup's manifest but not in its database", blob=blob_id)
        objects = verified = size_only = bytes_read = 0
        for bucket, key, version_id, size, etag, inline, segments, parts in conn.execute(
            "SELECT b.name, o.key, o.version_id, o.size, o.etag, o.inline_data, o.segments, o.parts"
            " FROM objects o JOIN buckets b ON b.id = o.bucket_id WHERE o.is_delete_marker = 0"
        ):
            objects += 1
            where = {"bucket": bucket, "key": bytes(key).decode("utf-8", "replace"), "versionId": version_id}
            pieces = json.loads(segments) if segments else []
            if any(blob_id not in rows for blob_id, *_ in pieces):
                findings.add("object refers to a blob the database does not list", **where)
                continue
            try:
                problem, checked = _check_object(blob_root, size, etag, inline, pieces, parts)
            except OSError as exc:
                findings.add(f"cannot read its bytes: {exc}", **where)
                continue
            bytes_read += size
            if problem:
                findings.add(problem, **where)
            elif checked:
                verified += 1
            else:
                size_only += 1
    finally:
        conn.close()
    return {
        "verifier": "built-in",
        "clean": findings.count == 0,
        "blobs": len(rows),
        "objects": objects,
        "verifiedByEtag": verified,
        "checkedBySizeOnly": size_only,
        "bytesRead": bytes_read,
        "problemCount": findings.count,
        "problems": findings.problems,
    }


def _blob_path(blob_root: Path, blob_id: str) -> Path:
    return blob_root / blob_id[:2] / blob_id[2:4] / blob_id


def _object_bytes(blob_root: Path, inline: bytes | None, pieces: list[list]) -> Iterator[bytes]:
    if inline is not None:
        yield bytes(inline)
        return
    for blob_id, length, *rest in pieces:
        offset = rest[0] if rest else 0
        fd = os.open(_blob_path(blob_root, blob_id), os.O_RDONLY)
        try:
            left = length
            while left > 0:
                chunk = os.pread(fd, min(READ_BYTES, left), offset)
                if not chunk:
                    return  # shorter than the segment: the size comparison reports it
                offset += len(chunk)
                left -= len(chunk)
                yield chunk
        finally:
            os.close(fd)


def _check_object(
    blob_root: Path, size: int, etag: str, inline: bytes | None, pieces: list[list], parts_json: str | None
) -> tuple[str | None, bool]:
    """(problem or None, whether the ETag vouched for the bytes)."""
    etag = etag.strip('"')
    parts = json.loads(parts_json) if parts_json else []
    if "-" not in etag:
        digest, total = hashlib.md5(usedforsecurity=False), 0
        for chunk in _object_bytes(blob_root, inline, pieces):
            digest.update(chunk)
            total += len(chunk)
        if total != size:
            return f"{total} bytes stored, the object is {size}", False
        if digest.hexdigest() != etag:
            return "bytes do not match the ETag (MD5)", False
        return None, True
    if parts and sum(p[0] for p in parts) == size:
        return _check_multipart(blob_root, size, etag, inline, pieces, parts)
    total = sum(len(chunk) for chunk in _object_bytes(blob_root, inline, pieces))
    return (None if total == size else f"{total} bytes stored, the object is {size}"), False


def _check_multipart(
    blob_root: Path, size: int, etag: str, inline: bytes | None, pieces: list[list], parts: list[list]
) -> tuple[str | None, bool]:
    """S3's multipart ETag: MD5 of the parts' MD5 digests, then '-' and the part count."""
    sizes = [int(part[0]) for part in parts]
    digests: list[bytes] = []
    current = hashlib.md5(usedforsecurity=False)
    index, left, total = 0, sizes[0], 0
    for chunk in _object_bytes(blob_root, inline, pieces):
        total += len(chunk)
        view = memoryview(chunk)
        while view:
            if left == 0:
                if index + 1 == len(sizes):
                    break  # more bytes than the parts: the size comparison reports it
                digests.append(current.digest())
                current, index = hashlib.md5(usedforsecurity=False), index + 1
                left = sizes[index]
                continue
            take = min(left, len(view))
            current.update(view[:take])
            left -= take
            view = view[take:]
    if total != size:
        return f"{total} bytes stored, the object is {size}", False
    digests.append(current.digest())
    while len(digests) < len(parts):  # trailing empty parts
        digests.append(hashlib.md5(b"", usedforsecurity=False).digest())
    for number, (digest, part) in enumerate(zip(digests, parts, strict=True), start=1):
        if digest.hex() != str(part[1]).strip('"'):
            return f"part {number} does not match its ETag (MD5)", False
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest() + f"-{len(parts)}"
    if combined != etag:
        return "bytes do not match the multipart ETag", False
    return None, True
