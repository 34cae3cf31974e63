"""Starting Folio: first-start credentials, operator accounts, health, and
virtual-hosted-style addressing when a domain is configured."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import boto3
import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.folio_process import FolioProcess


def test_first_start_prints_admin_credentials_once_and_they_work(tmp_path: Path) -> None:
    server = FolioProcess(
        data_dir=tmp_path / "data", env={"FOLIO_ROOT_ACCESS_KEY": "", "FOLIO_ROOT_SECRET_KEY": ""}
    )
    server.start()
    try:
        log = server.log()
        access = re.search(r"Access key: (\S+)", log)
        secret = re.search(r"Secret key: (\S+)", log)
        assert access and secret, log
        s3 = boto3.client(
            "s3",
            endpoint_url=server.s3_url,
            region_name="us-east-1",
            aws_access_key_id=access.group(1),
            aws_secret_access_key=secret.group(1),
        )
        s3.create_bucket(Bucket="first-start")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["first-start"]
        health = httpx.get(f"{server.web_url}/healthz").json()
        # A fresh store: serving, nothing damaged, no scrub or check run yet.
        assert health["status"] == "ok", health
        integrity = health["integrity"]
        assert (integrity["corruptReads"], integrity["damagedBlobs"], integrity["damagedObjects"]) == (0, 0, 0)
        assert integrity["verifyReads"] is True and integrity["lastScrub"] is None, health
    finally:
        server.stop()
    server.start()
    try:
        assert server.log().count("Secret key:") == 1, "credentials are shown on the first start only"
    finally:
        assert server.stop() == 0


def test_admin_create_account_prints_the_new_accounts_credentials(folio: FolioProcess) -> None:
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    created = folio.create_account(email, password="correct horse battery")
    assert set(created) >= {"accountId", "canonicalId", "displayName", "email", "accessKey", "secretKey"}
    assert created["email"] == email
    assert re.fullmatch(r"[0-9a-f]{64}", created["canonicalId"])
    s3 = boto3.client(
        "s3",
        endpoint_url=folio.s3_url,
        region_name="us-east-1",
        aws_access_key_id=created["accessKey"],
        aws_secret_access_key=created["secretKey"],
    )
    assert s3.list_buckets()["Owner"]["ID"] == created["canonicalId"]


def _virtual_hosted(
    server: FolioProcess, method: str, host: str, path: str, body: bytes = b""
) -> httpx.Response:
    """Sign for http://<host>/<path> as a client would, but connect to the loopback port."""
    url = f"http://{host}:{server.s3_port}{path}"
    request = AWSRequest(
        method=method, url=url, data=body, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    )
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    headers["host"] = f"{host}:{server.s3_port}"  # the signed Host, not the loopback address
    return httpx.request(method, f"{server.s3_url}{path}", headers=headers, content=body)


def test_virtual_hosted_style_requests_work_when_a_domain_is_configured(tmp_path: Path) -> None:
    server = FolioProcess(data_dir=tmp_path / "data", config_text='[server]\ndomain = "s3.folio.test"\n')
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.s3_url,
            region_name="us-east-1",
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
        )
        s3.create_bucket(Bucket="vhost")
        put = _virtual_hosted(server, "PUT", "vhost.s3.folio.test", "/dir/hello.txt", b"hello, vhost")
        assert put.status_code == 200, put.text
        # Path-style still works beside it, and sees the same object.
        assert s3.get_object(Bucket="vhost", Key="dir/hello.txt")["Body"].read() == b"hello, vhost"
        got = _virtual_hosted(server, "GET", "vhost.s3.folio.test", "/dir/hello.txt")
        assert (got.status_code, got.content) == (200, b"hello, vhost")
        listing = _virtual_hosted(server, "GET", "vhost.s3.folio.test", "/")
        assert listing.status_code == 200 and "<Key>dir/hello.txt</Key>" in listing.text
    finally:
        server.stop()
