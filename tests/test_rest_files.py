"""The simple REST file API (seed 004, "Simple REST API") against the real server.

Everything goes over loopback with real clients: curl exactly as the seed's examples
type it, httpx for the rest of the REST calls, and boto3 with its default configuration
on the S3 listener to prove both doors open onto the same objects. Tests that look at
usage or default buckets use a fresh account each, so their numbers start at zero;
the others use the session server's admin account and a fresh bucket.

Every httpx client here fails the test on any 5xx answer ("never a 500"), and raw
sockets are used where the point is that the server answers from the headers alone
(a refused upload costs no transfer).
"""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.seaweedfs import stored_blob_ids
from tests.server_db import server_db
from tests.web_client import Account

FILES = "/api/v1/files"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# The fields the seed's examples show: clients written against them must find them all.
SEED_UPLOAD_FIELDS = {"id", "key", "bucket", "size", "contentType", "createdAt"}
SEED_LIST_FIELDS = {"id", "key", "size", "contentType", "updatedAt"}


# ---------------------------------------------------------------- helpers


def _never_5xx(response: httpx.Response) -> None:
    # Every answer of the API must be a deliberate one; a 5xx is a bug whatever we sent.
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} answered {response.status_code}"
    )


def rest_client(server: FolioProcess, account: Account | None = None, **headers: str) -> httpx.Client:
    """httpx on the web listener, authenticated with X-API-Key when given an account
    (no proxy from the environment: only our bytes reach the server)."""
    if account is not None:
        headers.setdefault("X-API-Key", account.api_key)
    return httpx.Client(
        base_url=server.web_url,
        headers=headers,
        trust_env=False,
        timeout=30,
        event_hooks={"response": [_never_5xx]},
    )


def api_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the JSON error format `{"error": {"code", "message", "details"}}`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def upload_raw(
    client: httpx.Client,
    key: str | None,
    data: bytes,
    content_type: str = "application/octet-stream",
    bucket: str | None = None,
) -> httpx.Response:
    params = {name: value for name, value in (("key", key), ("bucket", bucket)) if value is not None}
    return client.post(FILES, params=params, content=data, headers={"Content-Type": content_type})


def upload_form(
    client: httpx.Client, filename: str, data: bytes, content_type: str, **fields: str
) -> httpx.Response:
    return client.post(FILES, files={"file": (filename, data, content_type)}, data=fields)


def uploaded(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def list_keys(client: httpx.Client, **params: str) -> list[str]:
    """Every key of a listing, following cursors."""
    keys: list[str] = []
    cursor: str | None = None
    while True:
        query = dict(params, limit="1000", **({"cursor": cursor} if cursor else {}))
        response = client.get(FILES, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        keys += [item["key"] for item in page["files"]]
        if not page["hasMore"]:
            return keys
        cursor = page["nextCursor"]


def form_body(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    """A multipart/form-data body built by hand: (name, filename, content type, data) per
    part, so tests can cut it short or break it exactly where they want."""
    out = bytearray()
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def raw_http(
    server: FolioProcess, head_lines: list[str], body: bytes = b"", timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """One request over a bare socket, sending exactly `body` after the head (which may be
    less than its Content-Length): (status, headers, body). A server that waits for bytes
    that never come makes this time out, which is the failure we look for."""
    with socket.create_connection(("127.0.0.1", server.web_port), timeout=timeout) as sock:
        head = "\r\n".join([*head_lines, f"Host: 127.0.0.1:{server.web_port}", "Connection: close"])
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {received!r}"
            received += chunk
        raw_head, _, rest = received.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(lines[0].split(" ")[1]), headers, rest


def curl(*args: str, cwd: Path) -> tuple[int, bytes]:
    """curl as the seed types it, plus -sS, no proxy and the status on a last line."""
    done = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-w", "\n%{http_code}", *args],
        cwd=cwd,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def versions_of(s3: Any, bucket: str, key: str) -> tuple[list[dict], list[dict]]:
    """(versions, delete markers) of one key over S3's ListObjectVersions."""
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v for v in page.get("Versions", []) if v["Key"] == key]
    markers = [m for m in page.get("DeleteMarkers", []) if m["Key"] == key]
    return versions, markers


def admin_email(server: FolioProcess) -> str:
    """The admin account's email (made at first start), read from the database."""
    with server_db(server) as db:
        row = db.execute(
            "SELECT a.email FROM accounts a JOIN access_keys k ON k.account_id = a.id WHERE k.access_key = ?",
            (server.access_key,),
        ).fetchone()
    return row[0]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def root(folio: FolioProcess) -> Account:
    return Account("admin", folio.access_key, folio.secret_key)


@pytest.fixture
def api(folio: FolioProcess, root: Account) -> Iterator[httpx.Client]:
    with rest_client(folio, root) as client:
        yield client


@pytest.fixture
def new_account(folio: FolioProcess) -> Callable[..., Account]:
    """A fresh account (its own default bucket, usage from zero)."""

    def make(plan: str | None = None) -> Account:
        address = f"rest-{uuid.uuid4().hex[:12]}@example.com"
        made = folio.create_account(address, plan=plan)
        return Account(address, made["accessKey"], made["secretKey"])

    return make


# ---------------------------------------------------------------- 1. the seed's examples


def test_seed_curl_examples_work_as_written(
    folio: FolioProcess, new_account: Callable[..., Account], tmp_path: Path
) -> None:
    account = new_account()
    base = folio.web_url
    key_header = f"X-API-Key: {account.api_key}"
    photo = b"\xff\xd8\xff\xe0" + data_of(204800 - 6, 1) + b"\xff\xd9"
    (tmp_path / "photo.jpg").write_bytes(photo)

    # Upload using multipart form-data (file field), into the default bucket.
    status, body = curl(
        "-X", "POST", f"{base}/api/v1/files", "-H", key_header, "-F", "file=@photo.jpg", cwd=tmp_path
    )
    assert status == 201, body
    made = json.loads(body)
    assert made.keys() >= SEED_UPLOAD_FIELDS
    assert made["key"] == "photo.jpg"
    assert made["size"] == len(photo)
    assert made["contentType"] == "image/jpeg"  # curl's guess from the extension, as stored
    assert made["bucket"].startswith("files-")
    assert ISO_UTC.match(made["createdAt"]), made["createdAt"]
    assert made["id"]

    # Both auth forms of the seed list that default bucket.
    for header in (key_header, f"Authorization: Bearer {account.api_key}"):
        status, body = curl(f"{base}/api/v1/files", "-H", header, cwd=tmp_path)
        assert status == 200, body
        assert [f["key"] for f in json.loads(body)["files"]] == ["photo.jpg"]

    # List files: a named bucket, a prefix and a limit.
    my_bucket = f"my-bucket-{uuid.uuid4().hex[:12]}"
    make_s3_client(folio, account.access_key, account.secret_key).create_bucket(Bucket=my_bucket)
    for name, key in (("cat.jpg", "photos/cat.jpg"), ("dog.png", "photos/dog.png"), ("a.txt", "notes/a.txt")):
        (tmp_path / name).write_bytes(data_of(1000, len(name)))
        status, body = curl(
            "-X", "POST", f"{base}/api/v1/files", "-H", key_header,
            "-F", f"file=@{name}", "-F", f"key={key}", "-F", f"bucket={my_bucket}",
            cwd=tmp_path,
        )  # fmt: skip
        assert status == 201, body
    status, body = curl(
        f"{base}/api/v1/files?prefix=photos/&limit=20&bucket={my_bucket}", "-H", key_header, cwd=tmp_path
    )
    assert status == 200, body
    listing = json.loads(body)
    assert listing["hasMore"] is False
    assert [f["key"] for f in listing["files"]] == ["photos/cat.jpg", "photos/dog.png"]
    for item in listing["files"]:
        assert item.keys() >= SEED_LIST_FIELDS
        assert item["size"] == 1000
        assert ISO_UTC.match(item["updatedAt"]), item["updatedAt"]
    assert [f["contentType"] for f in listing["files"]] == ["image/jpeg", "image/png"]

    # Download a file by ID.
    status, body = curl(
        f"{base}/api/v1/files/{made['id']}", "-H", key_header, "-o", "downloaded-file.jpg", cwd=tmp_path
    )
    assert status == 200
    assert (tmp_path / "downloaded-file.jpg").read_bytes() == photo

    # Delete a file; afterwards it is gone from the listing and from downloads.
    status, body = curl("-X", "DELETE", f"{base}/api/v1/files/{made['id']}", "-H", key_header, cwd=tmp_path)
    assert status == 200, body
    assert json.loads(body) == {"success": True}
    status, body = curl(f"{base}/api/v1/files", "-H", key_header, cwd=tmp_path)
    assert status == 200 and json.loads(body)["files"] == []
    status, body = curl(f"{base}/api/v1/files/{made['id']}", "-H", key_header, cwd=tmp_path)
    assert status == 404 and json.loads(body)["error"]["code"] == "NotFound"


# ---------------------------------------------------------------- 2. one store, two doors


def test_rest_uploads_read_back_over_boto3(api: httpx.Client, s3: Any, bucket: str) -> None:
    # Inline-sized and blob-sized bodies (the store keeps small objects in the row).
    cases = [
        ("raw/small.pdf", data_of(1000, 2), "application/pdf"),
        ("raw/large.bin", data_of(300_000, 3), "application/x-folio-test"),
    ]
    for key, data, content_type in cases:
        made = uploaded(upload_raw(api, key, data, content_type, bucket=bucket))
        assert (made["key"], made["bucket"], made["size"]) == (key, bucket, len(data))
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data
        assert got["ContentType"] == content_type
        assert got["ETag"] == f'"{made["etag"]}"'

    # A form upload: the key from the form field (unicode, spaces), the type from the part.
    data = data_of(70_000, 4)
    key = "form/naïve café 東京.png"
    made = uploaded(upload_form(api, "ignored.png", data, "image/png", key=key, bucket=bucket))
    assert made["key"] == key and made["contentType"] == "image/png"
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data and got["ContentType"] == "image/png"


def test_boto3_uploads_read_back_over_rest(api: httpx.Client, s3: Any, bucket: str) -> None:
    cases = {
        "s3/data.bin": (data_of(90_000, 5), "application/x-custom"),
        "s3/page.json": (b'{"ok": true}', "application/json"),
        "s3/raw": (b"no type given", "binary/octet-stream"),  # boto3's default type, as S3 stores it
    }
    for key, (data, content_type) in cases.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    listing = api.get(FILES, params={"bucket": bucket, "prefix": "s3/"}).json()
    by_key = {item["key"]: item for item in listing["files"]}
    assert sorted(by_key) == sorted(cases)
    for key, (data, content_type) in cases.items():
        head = s3.head_object(Bucket=bucket, Key=key)
        item = by_key[key]
        assert item["size"] == len(data) and item["contentType"] == content_type
        assert f'"{item["etag"]}"' == head["ETag"]
        response = api.get(f"{FILES}/{item['id']}")
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["etag"] == head["ETag"]
        assert response.headers["content-type"] == content_type


def test_text_types_are_served_as_stored(api: httpx.Client, s3: Any, bucket: str) -> None:
    # The REST download must not add a charset the object never had (these bytes are not
    # UTF-8); S3's GetObject of the same object says exactly what was stored.
    for key, content_type in (("t/table.csv", "text/csv"), ("t/page.html", "text/html; charset=iso-8859-1")):
        s3.put_object(Bucket=bucket, Key=key, Body=b"caf\xe9,1\n", ContentType=content_type)
        assert s3.get_object(Bucket=bucket, Key=key)["ContentType"] == content_type
        made = uploaded(upload_raw(api, key + ".rest", b"caf\xe9,1\n", content_type, bucket=bucket))
        for file_id in (
            api.get(FILES, params={"bucket": bucket, "prefix": key}).json()["files"][0]["id"],
            made["id"],
        ):
            response = api.get(f"{FILES}/{file_id}")
            assert response.content == b"caf\xe9,1\n"
            assert response.headers["content-type"] == content_type, "Content-Type is served as stored"


def test_file_id_is_stable_across_reuploads_and_apis(api: httpx.Client, s3: Any, bucket: str) -> None:
    first = uploaded(upload_raw(api, "stable/doc.txt", b"one", bucket=bucket))
    second = uploaded(
        upload_form(api, "doc.txt", b"two!", "application/octet-stream", key="stable/doc.txt", bucket=bucket)
    )
    assert second["id"] == first["id"]
    assert api.get(f"{FILES}/{first['id']}").content == b"two!"

    # Overwritten over S3, then deleted and uploaded again: still the same id.
    s3.put_object(Bucket=bucket, Key="stable/doc.txt", Body=b"three over s3")
    listing = api.get(FILES, params={"bucket": bucket, "prefix": "stable/"}).json()["files"]
    assert [(item["key"], item["id"]) for item in listing] == [("stable/doc.txt", first["id"])]
    assert api.get(f"{FILES}/{first['id']}").content == b"three over s3"
    assert api.delete(f"{FILES}/{first['id']}").json() == {"success": True}
    again = uploaded(upload_raw(api, "stable/doc.txt", b"four", bucket=bucket))
    assert again["id"] == first["id"]

    # A different key, or the same key in another bucket, is another file.
    other = uploaded(upload_raw(api, "stable/doc.txt.bak", b"x", bucket=bucket))
    assert other["id"] != first["id"]


# ---------------------------------------------------------------- 3. listing


def test_pagination_visits_every_key_once_in_order(api: httpx.Client, bucket: str) -> None:
    expected = [f"page/{i:03d}.txt" for i in range(250)]
    # Neighbours that a prefix filter must leave out ("page" without the slash sorts close by).
    others = ["pagex", "page", "pagf/1", *[f"zz/{i}" for i in range(7)]]
    for key in random.Random(6).sample(expected + others, len(expected + others)):
        uploaded(upload_raw(api, key, key.encode(), "text/plain", bucket=bucket))

    seen: list[str] = []
    pages: list[tuple[int, bool]] = []
    cursor: str | None = None
    while True:
        params = {"bucket": bucket, "prefix": "page/", "limit": "100"}
        if cursor is not None:
            params["cursor"] = cursor
        page = api.get(FILES, params=params).json()
        pages.append((len(page["files"]), page["hasMore"]))
        seen += [item["key"] for item in page["files"]]
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        assert isinstance(page["nextCursor"], str) and page["nextCursor"]
        cursor = page["nextCursor"]
        assert len(pages) < 10, "the cursor does not advance"
    assert pages == [(100, True), (100, True), (50, False)]
    assert seen == expected  # every key once, in key order

    assert list_keys(api, bucket=bucket, prefix="zz/") == [f"zz/{i}" for i in range(7)]
    assert list_keys(api, bucket=bucket, prefix="pag") == sorted([*expected, "pagex", "page", "pagf/1"])
    assert list_keys(api, bucket=bucket, prefix="nothing/") == []
    everything = api.get(FILES, params={"bucket": bucket, "limit": "1000"}).json()
    assert [item["key"] for item in everything["files"]] == sorted(expected + others)
    assert everything["hasMore"] is False and everything["nextCursor"] is None
    assert len({item["id"] for item in everything["files"]}) == len(expected + others)
    # The default limit is 100.
    assert len(api.get(FILES, params={"bucket": bucket}).json()["files"]) == 100


# ---------------------------------------------------------------- 4. downloads


def test_range_head_and_meta(api: httpx.Client, bucket: str) -> None:
    data = data_of(200_000, 7)
    size = len(data)
    made = uploaded(upload_raw(api, "ranges/blob.bin", data, "application/x-test", bucket=bucket))
    url = f"{FILES}/{made['id']}"

    whole = api.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{made["etag"]}"'
    assert whole.headers["content-length"] == str(size)
    assert whole.headers["content-type"] == "application/x-test"

    for header, start, end in [
        ("bytes=0-0", 0, 0),
        ("bytes=100-65635", 100, 65635),
        ("bytes=199990-", 199990, size - 1),
        ("bytes=-10", size - 10, size - 1),
        ("bytes=199990-300000", 199990, size - 1),  # an end past the file is clamped
    ]:
        part = api.get(url, headers={"Range": header})
        assert part.status_code == 206, (header, part.status_code)
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert part.content == data[start : end + 1], header
        assert part.headers["content-length"] == str(end - start + 1), header

    for header in ("bytes=200000-", "bytes=999999-1000000"):
        refused = api.get(url, headers={"Range": header})
        api_error(refused, 416, "InvalidRange")
        assert refused.headers["content-range"] == f"bytes */{size}"

    # Ranges we do not honour (several, another unit, nonsense) are ignored as RFC 9110
    # says: the whole file.
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=abc"):
        full = api.get(url, headers={"Range": header})
        assert full.status_code == 200, (header, full.status_code, full.headers.get("content-range"))
        assert full.content == data, header

    head = api.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)

    meta = api.get(url, params={"meta": "true"})
    assert meta.status_code == 200 and meta.headers["content-type"].startswith("application/json")
    described = meta.json()
    for field in (
        "id",
        "key",
        "bucket",
        "size",
        "contentType",
        "etag",
        "versionId",
        "createdAt",
        "updatedAt",
    ):
        assert described[field] == made[field], field
    assert described["versionId"]  # buckets keep versions by default


def test_range_with_last_before_first_is_ignored(api: httpx.Client, bucket: str) -> None:
    # RFC 9110 14.1.1: last-pos < first-pos makes the range invalid; the server ignores it
    # and sends the whole file, never a partial answer with a negative length.
    data = data_of(1000, 20)
    made = uploaded(upload_raw(api, "ranges/reversed.bin", data, bucket=bucket))
    for header in ("bytes=10-5", "bytes=999-0"):
        full = api.get(f"{FILES}/{made['id']}", headers={"Range": header})
        assert full.status_code == 200, (header, full.status_code, full.headers.get("content-range"))
        assert full.content == data, header


def test_content_disposition_names_the_file_in_utf8(api: httpx.Client, bucket: str) -> None:
    name = 'résumé – 東京 "final" 100%.pdf'
    made = uploaded(
        upload_form(api, "x.pdf", b"%PDF-1.4 fake", "application/pdf", key=f"docs/2026/{name}", bucket=bucket)
    )
    response = api.get(f"{FILES}/{made['id']}")
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment")
    # Browsers take filename* (RFC 6266/8187) over filename: it must give the name back exactly.
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
    assert extended is not None, disposition
    assert unquote(extended.group(1), errors="strict") == name
    fallback = re.search(r'filename="([^"]*)"', disposition)
    assert fallback is not None and fallback.group(1).isascii()


def test_control_characters_in_a_key_still_download(api: httpx.Client, bucket: str) -> None:
    # S3 keys may hold CR/LF; the file name in Content-Disposition must neither split the
    # response's headers nor make the server drop the connection without an answer.
    evil = uploaded(upload_raw(api, "evil\r\nX-Injected: yes\r\n.txt", b"evil", "text/plain", bucket=bucket))
    response = api.get(f"{FILES}/{evil['id']}")
    assert response.status_code == 200 and response.content == b"evil"
    assert "x-injected" not in response.headers
    assert "\n" not in response.headers["content-disposition"]
    tabbed = uploaded(upload_raw(api, "tab\there\x7f.txt", b"tab", "text/plain", bucket=bucket))
    assert api.get(f"{FILES}/{tabbed['id']}").content == b"tab"


# ---------------------------------------------------------------- 5. errors


def test_missing_malformed_or_wrong_auth_is_401(
    folio: FolioProcess, api: httpx.Client, root: Account, bucket: str
) -> None:
    made = uploaded(upload_raw(api, "auth/kept.txt", b"kept", bucket=bucket))
    access, secret = root.access_key, root.secret_key
    wrong_headers: list[dict[str, str]] = [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": access},
        {"X-API-Key": f"{access}:"},
        {"X-API-Key": f":{secret}"},
        {"X-API-Key": f"{access}:{secret}x"},
        {"X-API-Key": f"FKNOSUCHKEY000000000:{secret}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {access}"},
        {"Authorization": f"Bearer {access}:wrong-secret"},
        {"Authorization": f"Basic {access}:{secret}"},
        {"Authorization": f"Token {access}:{secret}"},
    ]
    for headers in wrong_headers:
        with rest_client(folio, **headers) as client:
            api_error(client.get(FILES, params={"bucket": bucket}), 401, "Unauthorized")
            api_error(upload_raw(client, "auth/intruder.txt", b"nope", bucket=bucket), 401, "Unauthorized")
            denied = client.get(f"{FILES}/{made['id']}")
            api_error(denied, 401, "Unauthorized")
            assert b"kept" not in denied.content
            api_error(client.get(f"{FILES}/{made['id']}", params={"meta": "true"}), 401, "Unauthorized")
            api_error(client.delete(f"{FILES}/{made['id']}"), 401, "Unauthorized")
    # Nothing a refused caller did took effect.
    assert list_keys(api, bucket=bucket) == ["auth/kept.txt"]
    assert api.get(f"{FILES}/{made['id']}").content == b"kept"


def test_revoked_key_is_401(folio: FolioProcess, new_account: Callable[..., Account]) -> None:
    account = new_account()
    # There is no revocation endpoint yet, so revoke in the database. The server caches a
    # key it has seen for 30 s; this one has never been used, so the server must read the row.
    with server_db(folio, write=True) as db:
        db.execute(
            "UPDATE access_keys SET revoked_at = ? WHERE access_key = ?", (time.time(), account.access_key)
        )
    with rest_client(folio, account) as client:
        api_error(client.get(FILES), 401, "Unauthorized")
        api_error(upload_raw(client, "after-revoke.txt", b"x"), 401, "Unauthorized")
    with rest_client(folio, Authorization=f"Bearer {account.api_key}") as client:
        api_error(client.get(FILES), 401, "Unauthorized")
    assert folio.usage(account.email)["objects"] == 0


def test_another_accounts_file_is_not_found(
    folio: FolioProcess, new_account: Callable[..., Account], api: httpx.Client
) -> None:
    owner = new_account()
    secret_data = b"owner's private bytes " + data_of(100, 8)
    with rest_client(folio, owner) as mine:
        made = uploaded(upload_raw(mine, "private/diary.txt", secret_data, "text/plain"))
        missing = uploaded(upload_raw(mine, "private/gone.txt", b"x"))
        assert mine.delete(f"{FILES}/{missing['id']}").status_code == 200
    owner_bucket = made["bucket"]

    # The admin is "another account" here too: being admin is no way into a user's files.
    foreign = api.get(f"{FILES}/{made['id']}")
    error = api_error(foreign, 404, "NotFound")
    assert secret_data not in foreign.content and b"diary" not in foreign.content
    # Indistinguishable from a file that does not exist, or from garbage.
    assert api.get(f"{FILES}/{missing['id']}").json()["error"] == error
    assert api.get(f"{FILES}/not-an-id").json()["error"] == error
    api_error(api.get(f"{FILES}/{made['id']}", params={"meta": "true"}), 404, "NotFound")
    api_error(api.get(f"{FILES}/{made['id']}", headers={"Range": "bytes=0-3"}), 404, "NotFound")
    api_error(api.delete(f"{FILES}/{made['id']}"), 404, "NotFound")

    # The owner's bucket is as absent as a bucket that does not exist.
    theirs = api.get(FILES, params={"bucket": owner_bucket})
    nobody = api.get(FILES, params={"bucket": f"no-such-{uuid.uuid4().hex[:12]}"})
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["error"]["code"] == nobody.json()["error"]["code"]
    assert b"diary" not in theirs.content
    assert upload_raw(api, "planted.txt", b"planted", bucket=owner_bucket).status_code == 404
    assert upload_form(api, "planted.txt", b"planted", "text/plain", bucket=owner_bucket).status_code == 404

    with rest_client(folio, owner) as mine:
        assert mine.get(f"{FILES}/{made['id']}").content == secret_data
        assert list_keys(mine) == ["private/diary.txt"]
    assert folio.usage(owner.email)["bytesUsed"] == len(secret_data) + 1  # the deleted one is a kept version


def test_oversized_uploads_are_413_and_store_nothing(tmp_path: Path) -> None:
    limit = 100_000
    server = FolioProcess(data_dir=tmp_path / "data", config_text=f"[limits]\nmax_upload_bytes = {limit}\n")
    server.start()
    try:
        root = Account("admin", server.access_key, server.secret_key)
        with rest_client(server, root) as client:
            fits = data_of(limit, 9)
            made = uploaded(upload_raw(client, "fits.bin", fits))  # exactly the limit is allowed

            error = api_error(
                upload_raw(client, "too-big.bin", data_of(limit + 1, 10)), 413, "PayloadTooLarge"
            )
            assert error["details"].get("limit") == limit
            api_error(
                upload_form(client, "too-big.bin", data_of(150_000, 11), "image/png"), 413, "PayloadTooLarge"
            )
            # Overwriting an existing key with too much leaves the old bytes.
            api_error(upload_raw(client, "fits.bin", data_of(limit + 5000, 12)), 413, "PayloadTooLarge")

        # Chunked (no Content-Length): refused as the bytes pass the limit.
        def chunks() -> Iterator[bytes]:
            for _ in range(15):
                yield b"c" * 10_000

        with rest_client(server, root) as client:
            api_error(
                client.post(FILES, params={"key": "chunked.bin"}, content=chunks()), 413, "PayloadTooLarge"
            )

        # A declared length over the limit is refused from the headers alone.
        status, _headers, body = raw_http(
            server,
            [
                f"POST {FILES}?key=declared.bin HTTP/1.1",
                f"X-API-Key: {root.api_key}",
                "Content-Length: 1000000000",
            ],
        )
        assert status == 413 and json.loads(body)["error"]["code"] == "PayloadTooLarge"

        with rest_client(server, root) as client:
            assert list_keys(client) == ["fits.bin"]
            assert client.get(f"{FILES}/{made['id']}").content == fits
        usage = server.usage(admin_email(server))
        assert (usage["bytesUsed"], usage["objects"]) == (limit, 1)
        tmp_dir = server.data_dir / "tmp"
        assert not tmp_dir.exists() or not any(tmp_dir.iterdir()), "refused uploads left files in tmp/"
        blobs = stored_blob_ids(server)  # files under blobs/, or the upstream bucket's objects
        assert len(blobs) == 1, blobs  # fits.bin's, no more
    finally:
        server.stop()


def test_malformed_and_truncated_forms_are_400_and_store_nothing(
    folio: FolioProcess, new_account: Callable[..., Account]
) -> None:
    account = new_account()
    original = data_of(80_000, 13)
    boundary = "folio-test-boundary-7d3f"
    form_type = f"multipart/form-data; boundary={boundary}"
    whole = form_body(
        boundary, [("key", None, None, b"kept.bin"), ("file", "kept.bin", "application/x-a", original)]
    )
    with rest_client(folio, account) as client:
        made = uploaded(client.post(FILES, content=whole, headers={"Content-Type": form_type}))
        overwrite = form_body(boundary, [("file", "kept.bin", "text/plain", data_of(90_000, 14))])
        new_file = form_body(boundary, [("file", "new.bin", "text/plain", data_of(90_000, 15))])
        two_files = form_body(
            boundary, [("file", "one.txt", "text/plain", b"one"), ("file", "two.txt", "text/plain", b"two")]
        )
        long_key = form_body(boundary, [("key", None, None, b"k" * 1025), ("file", "a", None, b"x")])
        bad: list[tuple[str, bytes, str]] = [
            # Cut before the closing boundary: a truncated file must never be stored.
            ("overwrite cut short", overwrite[: -len(f"--{boundary}--\r\n") - 2], form_type),
            ("new file cut short", new_file[: len(new_file) // 2], form_type),
            ("cut inside the part headers", new_file[:60], form_type),
            ("not a form at all", b"this is not a multipart body", form_type),
            ("another boundary", new_file.replace(boundary.encode(), b"other-boundary"), form_type),
            ("no boundary parameter", new_file, "multipart/form-data"),
            ("not form-data", new_file, f"multipart/mixed; boundary={boundary}"),
            ("two file parts", two_files, form_type),
            ("no file part", form_body(boundary, [("key", None, None, b"k.txt")]), form_type),
            ("no key and no filename", form_body(boundary, [("file", None, "text/plain", b"x")]), form_type),
            ("an empty filename", form_body(boundary, [("file", "", "text/plain", b"x")]), form_type),
            ("a key over 1,024 bytes", long_key, form_type),
        ]  # fmt: skip
        for label, body, content_type in bad:
            response = client.post(FILES, content=body, headers={"Content-Type": content_type})
            assert response.status_code == 400, (label, response.status_code, response.text)
            api_error(response, 400, "BadRequest")
        api_error(upload_raw(client, None, b"raw body without a key"), 400, "BadRequest")

        assert list_keys(client) == ["kept.bin"]
        kept = client.get(f"{FILES}/{made['id']}")
        assert kept.content == original and kept.headers["content-type"] == "application/x-a"
        assert client.get(f"{FILES}/{made['id']}", params={"meta": "true"}).json()["etag"] == made["etag"]
    s3 = make_s3_client(folio, account.access_key, account.secret_key)
    versions, markers = versions_of(s3, made["bucket"], "kept.bin")
    assert len(versions) == 1 and markers == []
    usage = folio.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (len(original), 1)


def hang_up_mid_body(server: FolioProcess, target: str, headers: list[str], body: bytes) -> None:
    """Declare the whole body, send half of it, and hang up (a client that died mid-upload)."""
    with socket.create_connection(("127.0.0.1", server.web_port), timeout=10) as sock:
        head = "\r\n".join(
            [f"POST {target} HTTP/1.1", "Host: 127.0.0.1", *headers, f"Content-Length: {len(body)}"]
        )
        sock.sendall(head.encode() + b"\r\n\r\n" + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass


def test_client_hanging_up_mid_upload_stores_nothing(
    folio: FolioProcess, api: httpx.Client, root: Account, s3: Any, bucket: str
) -> None:
    original = data_of(70_000, 21)
    made = uploaded(upload_raw(api, "kept.bin", original, "application/x-a", bucket=bucket))
    log_start = len(folio.log())
    boundary = "folio-hang-up"
    form = form_body(boundary, [("file", "kept.bin", "text/plain", data_of(90_000, 22))])
    auth = f"X-API-Key: {root.api_key}"
    hang_up_mid_body(
        folio,
        f"{FILES}?bucket={bucket}",
        [auth, f"Content-Type: multipart/form-data; boundary={boundary}"],
        form,
    )
    hang_up_mid_body(folio, f"{FILES}?bucket={bucket}&key=kept.bin", [auth, "Content-Type: text/plain"], form)
    hang_up_mid_body(folio, f"{FILES}?bucket={bucket}&key=new.bin", [auth, "Content-Type: text/plain"], form)
    time.sleep(0.5)  # the server notices a hang-up on its own schedule

    assert list_keys(api, bucket=bucket) == ["kept.bin"]
    assert api.get(f"{FILES}/{made['id']}").content == original
    versions, _markers = versions_of(s3, bucket, "kept.bin")
    assert [v["VersionId"] for v in versions] == [made["versionId"]]
    # A client going away is no internal error: no 500 logged with a traceback for it.
    assert "POST /api/v1/files failed" not in folio.log()[log_start:]


def test_bad_limit_is_400(api: httpx.Client, bucket: str) -> None:
    uploaded(upload_raw(api, "k0", b"x", bucket=bucket))
    # "²" passes str.isdigit() but int() refuses it: that must be a 400, not a crash.
    for limit in ("0", "1001", "-1", "abc", "1.5", "1e2", "²"):
        api_error(api.get(FILES, params={"bucket": bucket, "limit": limit}), 400, "BadRequest")
    assert len(api.get(FILES, params={"bucket": bucket, "limit": "1"}).json()["files"]) == 1
    assert len(api.get(FILES, params={"bucket": bucket, "limit": "1000"}).json()["files"]) == 1


def test_bad_cursor_is_400(api: httpx.Client, bucket: str) -> None:
    for i in range(3):
        uploaded(upload_raw(api, f"k{i}", b"x", bucket=bucket))
    # A cursor must be one the API handed out; garbage must not quietly restart the listing
    # (a client that loops on nextCursor would never end).
    for cursor in ("a", "!!!", "***", "%%%", "@@@@"):
        api_error(api.get(FILES, params={"bucket": bucket, "cursor": cursor}), 400, "BadRequest")
    first = api.get(FILES, params={"bucket": bucket, "limit": "1"}).json()
    rest = api.get(FILES, params={"bucket": bucket, "limit": "10", "cursor": first["nextCursor"]}).json()
    assert [item["key"] for item in rest["files"]] == ["k1", "k2"]


def test_unknown_endpoints_and_methods_answer_json(api: httpx.Client) -> None:
    api_error(api.get("/api/v1/nothing-here"), 404, "NotFound")
    api_error(api.get("/api/v2/files"), 404, "NotFound")
    api_error(api.get(f"{FILES}/f_"), 404, "NotFound")
    api_error(api.get(f"{FILES}/f_{'A' * 3000}"), 404, "NotFound")
    api_error(api.get(f"{FILES}/f_bm8tc3VjaC1idWNrZXQvaw"), 404, "NotFound")  # "no-such-bucket/k"
    response = api.put(FILES, content=b"x")
    assert response.status_code == 405 and response.json()["error"]["code"] == "MethodNotAllowed"


def test_quota_exceeded_is_403_and_keeps_the_previous_version(
    folio: FolioProcess, new_account: Callable[..., Account]
) -> None:
    account = new_account(plan="tiny")  # storage_bytes 1,000,000; noncurrent versions count
    first = data_of(600_000, 16)
    with rest_client(folio, account) as client:
        made = uploaded(upload_raw(client, "doc.bin", first, "application/x-first"))
        # 600,000 kept as a version + 500,000 new > 1,000,000.
        too_much = data_of(500_000, 17)
        api_error(upload_raw(client, "doc.bin", too_much, "text/plain"), 403, "QuotaExceeded")
        api_error(upload_form(client, "doc.bin", too_much, "text/plain"), 403, "QuotaExceeded")
        api_error(upload_raw(client, "other.bin", too_much), 403, "QuotaExceeded")

        # Chunked (no Content-Length): refused once the bytes pass the quota.
        def chunks() -> Iterator[bytes]:
            for _ in range(50):
                yield b"q" * 10_000

        api_error(client.post(FILES, params={"key": "doc.bin"}, content=chunks()), 403, "QuotaExceeded")

    # With a known length the refusal comes from the headers: not one body byte is sent.
    status, _headers, body = raw_http(
        folio,
        [f"POST {FILES}?key=doc.bin HTTP/1.1", f"X-API-Key: {account.api_key}", "Content-Length: 2000000"],
    )
    assert status == 403 and json.loads(body)["error"]["code"] == "QuotaExceeded"

    with rest_client(folio, account) as client:
        current = client.get(f"{FILES}/{made['id']}")
        assert current.content == first and current.headers["content-type"] == "application/x-first"
        assert (
            client.get(f"{FILES}/{made['id']}", params={"meta": "true"}).json()["versionId"]
            == made["versionId"]
        )
        # The refusals reserved nothing: what still fits is accepted.
        uploaded(upload_raw(client, "small.bin", data_of(300_000, 18)))
    s3 = make_s3_client(folio, account.access_key, account.secret_key)
    versions, _markers = versions_of(s3, made["bucket"], "doc.bin")
    assert [v["VersionId"] for v in versions] == [made["versionId"]]
    usage = folio.usage(account.email)
    assert (usage["bytesUsed"], usage["objects"]) == (900_000, 2)


# ---------------------------------------------------------------- 6. Time Machine


def test_rest_overwrite_keeps_versions_visible_over_s3(api: httpx.Client, s3: Any, bucket: str) -> None:
    contents = [b"first draft", b"second draft " + data_of(70_000, 19), b"final"]
    made = [
        uploaded(upload_raw(api, "tm/report.txt", body, "text/plain", bucket=bucket)) for body in contents
    ]
    version_ids = [m["versionId"] for m in made]
    assert all(version_ids) and len(set(version_ids)) == 3
    assert len({m["id"] for m in made}) == 1

    versions, markers = versions_of(s3, bucket, "tm/report.txt")
    assert markers == []
    assert sorted(v["VersionId"] for v in versions) == sorted(version_ids)
    assert [v["VersionId"] for v in versions if v["IsLatest"]] == [version_ids[-1]]
    for version_id, body in zip(version_ids, contents, strict=True):
        assert s3.get_object(Bucket=bucket, Key="tm/report.txt", VersionId=version_id)["Body"].read() == body

    # A REST delete is a delete marker: the file is gone, its history is not.
    assert api.delete(f"{FILES}/{made[0]['id']}").json() == {"success": True}
    api_error(api.get(f"{FILES}/{made[0]['id']}"), 404, "NotFound")
    api_error(api.delete(f"{FILES}/{made[0]['id']}"), 404, "NotFound")
    assert list_keys(api, bucket=bucket, prefix="tm/") == []
    versions, markers = versions_of(s3, bucket, "tm/report.txt")
    assert sorted(v["VersionId"] for v in versions) == sorted(version_ids)
    assert len(markers) == 1 and markers[0]["IsLatest"]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="tm/report.txt")
