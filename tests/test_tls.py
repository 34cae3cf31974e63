"""HTTPS (issue 17, "TLS"): `[server] tls_cert` / `tls_key` and `folio serve --tls-cert
/--tls-key` serve both listeners over TLS under uvicorn and Hypercorn. On the web listener
over HTTPS: Strict-Transport-Security, a Secure session cookie, and the links Folio makes
(share links, signed image URLs) in https. In bucket policies aws:SecureTransport is true
over TLS only. A certificate that cannot be served stops `folio serve` with one line.

The S3 clients over TLS (boto3, the aws CLI, presigned URLs with httpx and curl) are the
modules that run over both transports (tests/transport.py); the certificates come from a
test CA (tests/tls_ca.py) that every client here is given as its CA bundle."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import TEST_CONFIG, make_s3_client, new_bucket
from tests.folio_process import FolioProcess, free_port
from tests.tls_ca import TlsFiles, make_test_ca, other_key
from tests.web_client import fresh_address

PASSWORD = "correct horse battery staple"


def web_client(server: FolioProcess) -> httpx.Client:
    """httpx on the web listener from its own loopback address (sign-up is limited per
    address), trusting the test CA over HTTPS."""
    return httpx.Client(
        base_url=server.web_url,
        transport=httpx.HTTPTransport(local_address=fresh_address(), verify=server.verify),
        timeout=30,
    )


def sign_up(client: httpx.Client) -> tuple[httpx.Response, dict]:
    email = f"tls-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response, response.json()


def session_cookie(response: httpx.Response) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


def attributes(set_cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in set_cookie.split(";")[1:]}


# ---------------------------------------------------------------- the web listener


@pytest.mark.parametrize("transport", ["http", "https"])
def test_web_listener_sends_hsts_and_a_secure_session_cookie_over_https_only(
    request: pytest.FixtureRequest, transport: str
) -> None:
    server: FolioProcess = request.getfixturevalue("folio_https" if transport == "https" else "folio")
    with web_client(server) as client:
        signup, account = sign_up(client)
        cookie = session_cookie(signup)
        login = client.post("/api/auth/login", json={"email": account["email"], "password": PASSWORD})
        assert login.status_code == 200, login.text
        redirect = client.get("/login")  # signed in: on to the buckets
        assert redirect.status_code == 303
        client.cookies.clear()
        page = client.get("/login")
        assert page.status_code == 200
        health = client.get("/healthz")

    for response in (signup, login, redirect, page, health):
        hsts = response.headers.get("strict-transport-security")
        assert hsts == ("max-age=31536000" if transport == "https" else None), response.url
    for set_cookie in (cookie, session_cookie(login)):
        assert {"httponly", "samesite", "path"} <= attributes(set_cookie)
        assert ("secure" in attributes(set_cookie)) == (transport == "https"), set_cookie


def test_links_folio_makes_over_https_are_https_and_work(folio_https: FolioProcess) -> None:
    with web_client(folio_https) as client:
        signup, account = sign_up(client)
        cookie = session_cookie(signup).split(";", 1)[0]
        s3 = make_s3_client(folio_https, account["accessKey"], account["secretKey"])
        for bucket in new_bucket(s3, "tls-links"):
            s3.put_object(Bucket=bucket, Key="report.txt", Body=b"shared over tls")
            headers = {"Cookie": cookie}
            share = client.post("/api/shares", json={"bucket": bucket, "key": "report.txt"}, headers=headers)
            assert share.status_code in (200, 201), share.text
            url = share.json()["url"]
            assert url.startswith(f"https://127.0.0.1:{folio_https.web_port}/s/"), url
            download = client.get(url)
            assert (download.status_code, download.content) == (200, b"shared over tls")

            signed = client.post(
                "/api/img/sign",
                json={"bucket": bucket, "key": "report.txt", "params": {"width": 10}},
                headers=headers,
            )
            assert signed.status_code == 200, signed.text
            assert signed.json()["url"].startswith(f"https://127.0.0.1:{folio_https.web_port}/api/img/")
            s3.delete_object(Bucket=bucket, Key="report.txt")


# ---------------------------------------------------------------- aws:SecureTransport


def _https_only_public_policy(bucket: str) -> str:
    resource = f"arn:aws:s3:::{bucket}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Read",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": resource,
                },
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resource,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


@pytest.mark.parametrize("transport", ["http", "https"])
def test_secure_transport_is_true_over_tls_only(request: pytest.FixtureRequest, transport: str) -> None:
    server: FolioProcess = request.getfixturevalue("folio_https" if transport == "https" else "folio")
    s3 = make_s3_client(server)
    for bucket in new_bucket(s3, "tls-policy"):
        s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"tls only")
        s3.put_bucket_policy(Bucket=bucket, Policy=_https_only_public_policy(bucket))
        anonymous = httpx.get(f"{server.s3_url}/{bucket}/doc.txt", verify=server.verify, timeout=30)
        owner_status = 200
        try:
            s3.get_object(Bucket=bucket, Key="doc.txt")
        except ClientError as exc:
            owner_status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        if transport == "https":
            assert (anonymous.status_code, anonymous.content) == (200, b"tls only")
            assert owner_status == 200
        else:
            # The explicit Deny holds for everyone, the owner too, as on AWS.
            assert anonymous.status_code == 403
            assert owner_status == 403
        s3.delete_bucket_policy(Bucket=bucket)
        s3.delete_object(Bucket=bucket, Key="doc.txt")


# ---------------------------------------------------------------- both engines


@pytest.mark.parametrize("engine", ["uvicorn", "hypercorn"])
def test_each_engine_serves_both_listeners_over_tls_and_stops_promptly(
    tmp_path: Path, tls_files: TlsFiles, engine: str
) -> None:
    server = FolioProcess(data_dir=tmp_path / "data", config_text=TEST_CONFIG, engine=engine, tls=tls_files)
    server.start()
    try:
        s3 = make_s3_client(server)
        sent: list[bytes] = []
        s3.meta.events.register(
            "before-send.s3.PutObject",
            lambda request, **_: sent.append(request.headers["x-amz-content-sha256"]),
        )
        s3.create_bucket(Bucket="tls-engine")
        body = os.urandom(2 * 1024 * 1024 + 7)
        s3.put_object(Bucket="tls-engine", Key="k", Body=body)
        assert sent == [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
        assert s3.get_object(Bucket="tls-engine", Key="k")["Body"].read() == body
        health = httpx.get(f"{server.web_url}/healthz", verify=server.verify, timeout=10)
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        # Plain HTTP to a TLS listener is refused at the handshake, not answered.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.s3_port}/", timeout=5)
        # boto3 keeps its connection open in its pool and never answers close_notify:
        # the server must not wait for it when it stops (uvicorn: at once; Hypercorn:
        # its 5 s TLS shutdown timeout).
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < (3 if engine == "uvicorn" else 9)
    finally:
        server.kill()
    assert "Traceback" not in server.log()


def test_an_idle_tls_connection_is_closed_by_the_keep_alive_timeout(folio_https: FolioProcess) -> None:
    # The server's keep-alive timeout (5 s) ends an idle TLS connection as it does a plain one.
    context = folio_https.tls.client_context() if folio_https.tls else None
    connection = http.client.HTTPSConnection("127.0.0.1", folio_https.s3_port, context=context, timeout=15)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
        started = time.monotonic()
        assert connection.sock.recv(1) == b""  # closed by the server, not by our 15 s timeout
        assert time.monotonic() - started < 10
    finally:
        connection.close()


# ---------------------------------------------------------------- start-up refusals


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--s3-listen",
            f"127.0.0.1:{free_port()}",
            "--web-listen",
            f"127.0.0.1:{free_port()}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("tls-bad")
    good = make_test_ca(root / "good")
    garbage = root / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    yield {"cert": good.cert, "key": good.key, "other_key": other_key(root), "garbage": garbage, "dir": root}


# Each case starts a real `folio serve` (about a second each); every other message is
# checked without a process in tests/unit/test_tls_files.py.
CASES = {
    "missing-cert": (
        ["--tls-cert", "{dir}/nope.pem", "--tls-key", "{key}"],
        "{dir}/nope.pem: cannot read it",
    ),
    "cert-not-pem": (["--tls-cert", "{garbage}", "--tls-key", "{key}"], "not a PEM certificate chain"),
    "cert-without-key": (["--tls-cert", "{cert}"], "go together"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_certificate_that_cannot_be_served_stops_start_up_with_one_clear_line(
    tmp_path: Path, bad_files: dict[str, Path], case: str
) -> None:
    args, expected = CASES[case]
    out = _serve(tmp_path, *(arg.format(**bad_files) for arg in args))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("folio: "), out.stderr
    assert expected.format(**bad_files) in lines[0], lines[0]
    assert not (tmp_path / "data").exists()  # refused before the store was opened


def test_tls_files_from_the_config_file_are_checked_the_same_way(
    tmp_path: Path, bad_files: dict[str, Path]
) -> None:
    config = tmp_path / "folio.toml"
    config.write_text(f'[server]\ntls_cert = "{bad_files["cert"]}"\ntls_key = "{bad_files["other_key"]}"\n')
    out = _serve(tmp_path, "--config", str(config))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        f"folio: [server] tls_key {bad_files['other_key']} does not belong to the certificate in tls_cert "
        f"{bad_files['cert']} (the first certificate of the chain must be the server's own)"
    )
