"""Two Folio processes serving the same data (issue 18, "Stateless nodes"): what one node
does, the other sees at once; caches of database state follow changes made through the
other node on the very next request; quota reservations of uploads in flight are shared
(and expire when their node dies); signatures and sessions made by one node are good on
the other.

The backend comes from the `backend` fixture, which follows the suite's engine variables:
by default two `folio serve` processes on one data directory (SQLite in WAL mode, one blob
directory), each with its own ports, config and log file; with FOLIO_TEST_DATABASE=postgres
one PostgreSQL database for both, and with FOLIO_TEST_BLOBS=s3 as well one upstream bucket
for both and a data directory of each node's own (stateless nodes). Every node names the
same master key file (`[auth] master_key_file`)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess
from tests.server_db import server_db

MIB = 1024 * 1024
QUOTA = 10 * MIB  # plan `q`: ten 1 MiB uploads fit, not an eleventh
RESERVATION_SECONDS = 3.0  # [limits] quota_reservation_seconds, short for the expiry test

CONFIG = f"""
[limits]
quota_reservation_seconds = {RESERVATION_SECONDS}

[plans.q]
storage_bytes = {QUOTA}
max_buckets = 100
write_per_second = 0
read_per_second = 0
list_per_second = 0
dashboard_per_minute = 0
"""


@dataclass
class Backend:
    """How the nodes of one test cluster share their data: `database_url` and `blobs` (a
    `[blobs]` section) empty for SQLite and local blobs in the shared data directory."""

    root: Path
    database_url: str = ""
    blobs: str = ""
    nodes: list[FolioProcess] = field(default_factory=list)

    def node(self, label: str, config_text: str) -> FolioProcess:
        """A node (not started) that serves the cluster's data, with its own ports, config and
        log. The master key is named by [auth] master_key_file, as nodes on separate machines
        would name a key file they were given."""
        text = f'[auth]\nmaster_key_file = "{self.root / "keys" / "master.key"}"\n' + config_text
        if self.database_url:
            text += f'\n[database]\nurl = "{self.database_url}"\n'
        text += self.blobs
        if self.database_url and self.blobs:  # nothing shared on disk: a data directory each
            node = FolioProcess(data_dir=self.root / f"data-{label}", config_text=text)
        else:
            node = FolioProcess(data_dir=self.root / "data", config_text=text, node=f"-{label}")
        node.database_url = self.database_url
        self.nodes.append(node)
        return node

    def query(self, sql: str, *params: object) -> int:
        """One number from the shared metadata (reservation rows, usage)."""
        with server_db(self.nodes[0]) as conn:
            return int(conn.execute(sql, params).fetchone()[0])


@dataclass
class Cluster:
    backend: Backend
    a: FolioProcess
    b: FolioProcess


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    root = tmp_path_factory.mktemp("two-nodes")
    (root / "keys").mkdir()
    backend = Backend(root)
    if os.environ.get("FOLIO_TEST_DATABASE") == "postgres":
        from tests.pg import new_database_url

        backend.database_url = new_database_url("two_nodes")
    if os.environ.get("FOLIO_TEST_BLOBS") == "s3":
        from tests.seaweedfs import blobs_section, new_bucket

        backend.blobs = blobs_section(*new_bucket())
    return backend


@pytest.fixture(scope="module")
def cluster(backend: Backend) -> Iterator[Cluster]:
    # One after the other: the first makes the schema and the admin account, the second
    # finds them (as a node joining a running cluster does).
    a = backend.node("a", CONFIG).start()
    try:
        b = backend.node("b", CONFIG).start()
        try:
            yield Cluster(backend, a, b)
        finally:
            b.stop()
    finally:
        a.stop()


@dataclass
class Account:
    email: str
    account_id: str
    access_key: str
    secret_key: str

    @property
    def api_key(self) -> str:
        return f"{self.access_key}:{self.secret_key}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


def new_account(node: FolioProcess, plan: str | None = None) -> Account:
    created = node.create_account(f"nodes-{uuid.uuid4().hex[:12]}@example.com", plan=plan)
    return Account(created["email"], created["accountId"], created["accessKey"], created["secretKey"])


def s3_of(node: FolioProcess, account: Account, **kwargs):
    return make_s3_client(node, account.access_key, account.secret_key, **kwargs)


def new_bucket_name(tag: str = "nodes") -> str:
    return f"{tag}-{uuid.uuid4().hex[:16]}"


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def read(client, bucket: str, key: str, **extra: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


def keys_of(client, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


# -- objects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 300_000], ids=["inline", "blob"])
def test_a_put_on_a_is_read_listed_copied_versioned_and_deleted_through_b(
    cluster: Cluster, size: int
) -> None:
    account = new_account(cluster.a)
    on_a, on_b = s3_of(cluster.a, account), s3_of(cluster.b, account)
    bucket = new_bucket_name()
    on_a.create_bucket(Bucket=bucket)  # versioned by default (Time Machine)
    first, second = os.urandom(size), os.urandom(size)

    put = on_a.put_object(Bucket=bucket, Key="doc.bin", Body=first)
    assert read(on_b, bucket, "doc.bin") == first
    head = on_b.head_object(Bucket=bucket, Key="doc.bin")
    assert head["ETag"] == put["ETag"] and head["ContentLength"] == size
    assert keys_of(on_b, bucket) == ["doc.bin"]

    on_b.copy_object(Bucket=bucket, Key="copy.bin", CopySource={"Bucket": bucket, "Key": "doc.bin"})
    assert read(on_a, bucket, "copy.bin") == first
    assert keys_of(on_a, bucket) == ["copy.bin", "doc.bin"]

    again = on_a.put_object(Bucket=bucket, Key="doc.bin", Body=second)
    assert read(on_b, bucket, "doc.bin") == second
    versions = on_b.list_object_versions(Bucket=bucket, Prefix="doc.bin")["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [
        (again["VersionId"], True),
        (put["VersionId"], False),
    ]
    assert read(on_b, bucket, "doc.bin", VersionId=put["VersionId"]) == first

    deleted = on_b.delete_object(Bucket=bucket, Key="doc.bin")
    assert deleted["DeleteMarker"] is True
    with pytest.raises(ClientError) as exc:
        on_a.get_object(Bucket=bucket, Key="doc.bin")
    assert error_of(exc) == (404, "NoSuchKey")
    assert keys_of(on_a, bucket) == ["copy.bin"]
    # The history stays readable through either node, and the copy keeps its bytes.
    assert read(on_a, bucket, "doc.bin", VersionId=again["VersionId"]) == second
    assert read(on_b, bucket, "copy.bin") == first


@pytest.mark.parametrize("completed_on", ["a", "b"])
def test_a_multipart_upload_with_parts_on_both_nodes_completes_on_either(
    cluster: Cluster, completed_on: str
) -> None:
    account = new_account(cluster.a)
    on = {"a": s3_of(cluster.a, account), "b": s3_of(cluster.b, account)}
    bucket = new_bucket_name()
    on["b"].create_bucket(Bucket=bucket)
    upload = on["a"].create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    parts = []
    for number, (node, body) in enumerate(zip("bab", bodies, strict=True), start=1):
        made = on[node].upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": made["ETag"]})
    listed = on["a"].list_parts(Bucket=bucket, Key="big.bin", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (p["PartNumber"], p["ETag"], len(body)) for p, body in zip(parts, bodies, strict=True)
    ]
    assert [u["UploadId"] for u in on["b"].list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]

    done = on[completed_on].complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert done["ETag"].endswith('-3"')
    whole = b"".join(bodies)
    for client in on.values():
        got = read(client, bucket, "big.bin")
        assert len(got) == len(whole) and hashlib.sha256(got).digest() == hashlib.sha256(whole).digest()
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # A repeat of the Complete on the other node answers the same object.
    other = "b" if completed_on == "a" else "a"
    repeat = on[other].complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert repeat["ETag"] == done["ETag"]


# -- caches of database state: the next request after the change -----------------------------


def test_a_key_revoked_on_a_is_refused_on_b_at_the_next_request(cluster: Cluster) -> None:
    account = new_account(cluster.a)
    made = httpx.post(f"{cluster.a.web_url}/api/keys", headers=account.headers, json={"name": "second"})
    assert made.status_code == 201, made.text
    second = Account(account.email, account.account_id, made.json()["accessKey"], made.json()["secretKey"])
    docgen = httpx.post(
        f"{cluster.a.web_url}/api/keys", headers=account.headers, json={"name": "docs", "type": "docgen"}
    )
    assert docgen.status_code == 201, docgen.text
    doc_key = docgen.json()

    # Both nodes know (and cache) the keys: S3, the REST API and the document API.
    on_b = s3_of(cluster.b, second)
    for _ in range(3):
        assert on_b.list_buckets()["Buckets"] == []
        assert httpx.get(f"{cluster.b.web_url}/api/keys", headers=second.headers).status_code == 200
        assert (
            httpx.get(f"{cluster.b.web_url}/v2/account", headers={"X-API-Key": doc_key["apiKey"]}).status_code
            == 200
        )

    revoked = httpx.delete(
        f"{cluster.a.web_url}/api/keys", headers=account.headers, params={"id": second.access_key}
    )
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(ClientError) as exc:
        on_b.list_buckets()
    assert error_of(exc) == (403, "InvalidAccessKeyId")
    assert httpx.get(f"{cluster.b.web_url}/api/keys", headers=second.headers).status_code == 401

    gone = httpx.delete(
        f"{cluster.a.web_url}/api/keys", headers=account.headers, params={"id": doc_key["id"]}
    )
    assert gone.status_code == 200, gone.text
    assert (
        httpx.get(f"{cluster.b.web_url}/v2/account", headers={"X-API-Key": doc_key["apiKey"]}).status_code
        == 401
    )
    # The account's first key is untouched on both nodes.
    assert s3_of(cluster.b, account).list_buckets()["Buckets"] == []


def test_a_bucket_made_public_on_a_serves_anonymously_on_b_at_once_and_private_again(
    cluster: Cluster,
) -> None:
    account = new_account(cluster.a)
    on_a, on_b = s3_of(cluster.a, account), s3_of(cluster.b, account)
    bucket = new_bucket_name("public")
    on_a.create_bucket(Bucket=bucket)
    on_a.put_object(Bucket=bucket, Key="page.html", Body=b"<p>hello</p>", ContentType="text/html")
    object_url = f"{cluster.b.s3_url}/{bucket}/page.html"
    listing_url = f"{cluster.b.s3_url}/{bucket}?list-type=2"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )
    for _round in range(2):
        # B has the private bucket in its cache (it answered from it just now).
        assert httpx.get(object_url).status_code == 403
        on_a.put_bucket_policy(Bucket=bucket, Policy=policy)
        got = httpx.get(object_url)
        assert got.status_code == 200 and got.content == b"<p>hello</p>"
        on_a.delete_bucket_policy(Bucket=bucket)
        assert httpx.get(object_url).status_code == 403

    # The bucket ACL the same way (a public-read bucket lists to anyone).
    assert httpx.get(listing_url).status_code == 403
    on_a.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert httpx.get(listing_url).status_code == 200
    on_a.put_bucket_acl(Bucket=bucket, ACL="private")
    assert httpx.get(listing_url).status_code == 403

    # Deleted on B, gone on A at once; made again on A by another account, it is theirs on B.
    on_a.delete_object(Bucket=bucket, Key="page.html")
    on_b.delete_bucket(Bucket=bucket)  # Time Machine: its history goes with it
    with pytest.raises(ClientError) as exc:
        on_a.head_bucket(Bucket=bucket)
    assert error_of(exc)[0] == 404
    stranger = new_account(cluster.a)
    s3_of(cluster.a, stranger).create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        on_b.list_objects_v2(Bucket=bucket)
    assert error_of(exc) == (403, "AccessDenied")
    assert s3_of(cluster.b, stranger).list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_plan_changed_from_the_command_line_applies_on_both_nodes(cluster: Cluster) -> None:
    account = new_account(cluster.a)  # the default plan: 10 GiB
    on_a, on_b = s3_of(cluster.a, account), s3_of(cluster.b, account)
    bucket = new_bucket_name()
    on_a.create_bucket(Bucket=bucket)
    on_b.put_object(Bucket=bucket, Key="one", Body=os.urandom(2 * MIB))  # both nodes know the plan now
    on_a.put_object(Bucket=bucket, Key="two", Body=os.urandom(2 * MIB))
    cluster.a.admin("set-plan", "--email", account.email, "--plan", "q")  # another process: the CLI
    for client in (on_a, on_b):
        with pytest.raises(ClientError) as exc:
            client.put_object(Bucket=bucket, Key="three", Body=os.urandom(7 * MIB))  # 4 + 7 > 10 MiB
        assert error_of(exc) == (403, "QuotaExceeded")


# -- quota reservations ------------------------------------------------------------------------


def reservation_rows(cluster: Cluster, account_id: str) -> int:
    return cluster.backend.query("SELECT count(*) FROM quota_reservations WHERE account_id = ?", account_id)


def used_bytes(cluster: Cluster, account_id: str) -> int:
    return cluster.backend.query(
        "SELECT coalesce(sum(bytes_used), 0) FROM buckets WHERE account_id = ?", account_id
    )


def test_concurrent_uploads_over_both_nodes_never_pass_the_quota_and_leave_no_reservation(
    cluster: Cluster,
) -> None:
    account = new_account(cluster.a, plan="q")
    count = 20  # 20 MiB asked for over both nodes, 10 MiB allowed
    clients = [
        s3_of(node, account, config=Config(max_pool_connections=count, retries={"max_attempts": 1}))
        for node in (cluster.a, cluster.b)
    ]
    bucket = new_bucket_name("quota")
    clients[0].create_bucket(Bucket=bucket)
    bodies = {f"up-{i:02d}": os.urandom(MIB) for i in range(count)}  # each big enough for a row
    peak = {"bytes": 0, "rows": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.005):
            peak["bytes"] = max(peak["bytes"], used_bytes(cluster, account.account_id))
            peak["rows"] = max(peak["rows"], reservation_rows(cluster, account.account_id))

    barrier = threading.Barrier(count)

    def upload(index_key: tuple[int, str]) -> str:
        index, key = index_key
        barrier.wait()
        try:
            clients[index % 2].put_object(Bucket=bucket, Key=key, Body=bodies[key])
        except ClientError as exc:
            status, code = error_of_response(exc)
            return f"{status} {code}"
        return "ok"

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with ThreadPoolExecutor(count) as pool:
            outcomes = dict(zip(bodies, pool.map(upload, enumerate(bodies)), strict=True))
    finally:
        done.set()
        poller.join()

    accepted = sorted(key for key, outcome in outcomes.items() if outcome == "ok")
    assert {outcome for outcome in outcomes.values()} <= {"ok", "403 QuotaExceeded"}, outcomes
    assert peak["bytes"] <= QUOTA and used_bytes(cluster, account.account_id) == len(accepted) * MIB
    assert peak["rows"] > 0, "uploads of 1 MiB hold their quota in the database"
    assert reservation_rows(cluster, account.account_id) == 0, "every reservation row was settled or released"
    # Every reservation counted once, over both nodes: exactly the ten that fit got in.
    assert len(accepted) == QUOTA // MIB, outcomes
    for index, key in enumerate(accepted):
        assert read(clients[(index + 1) % 2], bucket, key) == bodies[key]
    with pytest.raises(ClientError) as exc:
        clients[1].put_object(Bucket=bucket, Key="one-more", Body=b"x")
    assert error_of(exc) == (403, "QuotaExceeded")


def error_of_response(exc: ClientError) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]


def test_the_reservation_of_a_node_killed_mid_upload_expires(cluster: Cluster) -> None:
    account = new_account(cluster.a, plan="q")
    on_a = s3_of(cluster.a, account)
    bucket = new_bucket_name("killed")
    on_a.create_bucket(Bucket=bucket)
    # A third node, killed while an 8 MiB upload streams into it.
    doomed = cluster.backend.node("c", CONFIG).start()
    try:
        url = s3_of(doomed, account).generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": "cut"}, ExpiresIn=300
        )
        parts = urlsplit(url)
        head = (
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Length: {8 * MIB}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", doomed.s3_port), timeout=10) as sock:
            sock.sendall(head.encode() + os.urandom(MIB))
            deadline = time.monotonic() + 20
            while reservation_rows(cluster, account.account_id) == 0:
                assert time.monotonic() < deadline, "the upload's reservation never reached the database"
                time.sleep(0.02)
            doomed.kill()
            killed_at = time.monotonic()
    finally:
        doomed.kill()

    # Its 8 MiB still count: 4 MiB more do not fit (through either node)...
    with pytest.raises(ClientError) as exc:
        on_a.put_object(Bucket=bucket, Key="after", Body=os.urandom(4 * MIB))
    assert error_of(exc) == (403, "QuotaExceeded")
    assert time.monotonic() - killed_at < RESERVATION_SECONDS, "too slow to see the reservation hold"
    # ...until the reservation expires, nobody renewing it.
    time.sleep(max(0.0, killed_at + RESERVATION_SECONDS + 0.5 - time.monotonic()))
    body = os.urandom(4 * MIB)
    s3_of(cluster.b, account).put_object(Bucket=bucket, Key="after", Body=body)
    assert read(on_a, bucket, "after") == body
    assert reservation_rows(cluster, account.account_id) == 0, "the dead node's row is gone"
    assert used_bytes(cluster, account.account_id) == 4 * MIB


# -- signatures and sessions made by one node, accepted by the other ---------------------------


def png(width: int = 64, height: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_signed_image_urls_share_links_and_sessions_work_on_the_other_node(cluster: Cluster) -> None:
    account = new_account(cluster.a)
    bucket = new_bucket_name("signed")
    s3_of(cluster.a, account).create_bucket(Bucket=bucket)
    s3_of(cluster.a, account).put_object(Bucket=bucket, Key="pic.png", Body=png(), ContentType="image/png")

    # An image URL signed by A, for anyone, served by B.
    minted = httpx.post(
        f"{cluster.a.web_url}/api/img/sign",
        headers=account.headers,
        json={"bucket": bucket, "key": "pic.png", "params": {"w": 32, "format": "png"}, "expiresIn": 300},
    )
    assert minted.status_code == 200, minted.text
    parts = urlsplit(minted.json()["url"])
    assert httpx.get(f"{cluster.b.web_url}{parts.path}").status_code == 403, "private without the signature"
    served = httpx.get(f"{cluster.b.web_url}{parts.path}?{parts.query}", timeout=30)
    assert served.status_code == 200, served.text
    assert Image.open(io.BytesIO(served.content)).size == (32, 16)

    # A share link made on A downloads from B.
    shared = httpx.post(
        f"{cluster.a.web_url}/api/shares", headers=account.headers, json={"bucket": bucket, "key": "pic.png"}
    )
    assert shared.status_code == 201, shared.text
    link = urlsplit(shared.json()["url"])
    got = httpx.get(f"{cluster.b.web_url}{link.path}")
    assert got.status_code == 200 and got.content == png()

    # A dashboard session opened on A is good on B, and logging out on A ends it on B.
    email, password = f"nodes-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery staple"
    signup = httpx.post(f"{cluster.a.web_url}/api/auth/signup", json={"email": email, "password": password})
    assert signup.status_code == 201, signup.text
    cookie = {"Cookie": f"session={signup.cookies['session']}"}
    me = httpx.get(f"{cluster.b.web_url}/api/account", headers=cookie)
    assert me.status_code == 200 and me.json()["email"] == email
    out = httpx.post(f"{cluster.a.web_url}/api/auth/logout", headers={**cookie, "Origin": cluster.a.web_url})
    assert out.status_code in (200, 204), out.text
    assert httpx.get(f"{cluster.b.web_url}/api/account", headers=cookie).status_code == 401
