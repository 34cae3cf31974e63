"""Presigned URLs against the real server, used without any SDK: plain httpx and curl.

URLs come from boto3's `generate_presigned_url` (SigV2 query auth, what the default client
makes for us-east-1 with a custom endpoint, and SigV4 with `signature_version="s3v4"`)
and from `aws s3 presign`. Covers GET (with response-* overrides), HEAD, DELETE, PUT
with a signed Content-Type (the seed's curl example), expiry and tampering. Every test
runs over plain HTTP and over HTTPS (tests/transport.py), where httpx and curl are given
the test CA.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from lxml import etree

from tests.conftest import AwsRunner, make_s3_client
from tests.folio_process import FolioProcess
from tests.transport import folio_over_both, s3_over_both  # noqa: F401 - every test: http and https

KEY = "photos/my photo é+1.jpg"
SIGNERS = ["sigv2-default", "sigv4"]


@pytest.fixture(scope="module")
def signers(folio: FolioProcess) -> dict:
    """The two clients a user would presign with."""
    return {
        "sigv2-default": make_s3_client(folio),
        "sigv4": make_s3_client(folio, config=Config(signature_version="s3v4")),
    }


@pytest.fixture(params=SIGNERS)
def signer(request: pytest.FixtureRequest, signers: dict):
    return signers[request.param]


def presign(client, operation: str, bucket: str, key: str = KEY, expires: int = 300, **params) -> str:
    return client.generate_presigned_url(
        operation, Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=expires
    )


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    root = etree.fromstring(response.content)
    return response.status_code, root.findtext("Code"), root.findtext("Message")


Curl = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture(scope="module")
def http(folio: FolioProcess) -> Iterator[httpx.Client]:
    """httpx as a user would run it, trusting the server's test CA over HTTPS."""
    with httpx.Client(verify=folio.verify, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def curl(folio: FolioProcess) -> Curl:
    """curl with the response body on stdout and the status code as the last line (and the
    test CA as its CA bundle over HTTPS)."""
    trust = ["--cacert", str(folio.tls.ca)] if folio.tls else []

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_code}", *trust, *args],
            capture_output=True,
            timeout=60,
            check=True,
        )

    return run


def curl_status_and_body(out: subprocess.CompletedProcess[bytes]) -> tuple[int, bytes]:
    body, _, status = out.stdout.rpartition(b"\n")
    return int(status), body


def test_sigv2_is_what_the_default_client_presigns(signers: dict, bucket: str) -> None:
    # So the "sigv2-default" cases below really cover SigV2 query auth.
    assert "Signature=" in presign(signers["sigv2-default"], "get_object", bucket)
    assert "X-Amz-Signature=" in presign(signers["sigv4"], "get_object", bucket)


def test_presigned_urls_name_the_servers_scheme(
    signers: dict, aws: AwsRunner, folio: FolioProcess, bucket: str
) -> None:
    # Over TLS every presigned URL is an https one (the endpoint the clients were given).
    urls = [presign(client, "get_object", bucket) for client in signers.values()]
    urls.append(aws("s3", "presign", f"s3://{bucket}/{KEY}").stdout.strip())
    for url in urls:
        assert url.startswith(f"{folio.scheme}://127.0.0.1:{folio.s3_port}/{bucket}/"), url


# ---------------------------------------------------------------- GET, HEAD, DELETE


def test_presigned_get_works_with_httpx_and_curl(
    s3, signer, bucket: str, http: httpx.Client, curl: Curl
) -> None:
    data = os.urandom(150 * 1024)
    s3.put_object(Bucket=bucket, Key=KEY, Body=data, ContentType="image/jpeg")
    url = presign(signer, "get_object", bucket)

    response = http.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"

    status, body = curl_status_and_body(curl(url))
    assert (status, body) == (200, data)


def test_presigned_get_honours_response_overrides(
    s3, signer, bucket: str, http: httpx.Client, curl: Curl
) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"report", ContentType="text/plain")
    url = presign(
        signer,
        "get_object",
        bucket,
        ResponseContentType="application/pdf",
        ResponseContentDisposition='attachment; filename="report 2024.pdf"',
    )
    response = http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="report 2024.pdf"'
    assert response.content == b"report"

    headers = curl("-D", "-", "-o", os.devnull, url).stdout.decode().lower()
    assert "content-type: application/pdf" in headers
    assert 'content-disposition: attachment; filename="report 2024.pdf"' in headers


def test_presigned_head_works(s3, signer, bucket: str, http: httpx.Client, curl: Curl) -> None:
    put = s3.put_object(Bucket=bucket, Key=KEY, Body=b"12345", ContentType="image/gif")
    url = presign(signer, "head_object", bucket)
    response = http.head(url)
    assert response.status_code == 200
    assert response.headers["etag"] == put["ETag"]
    assert response.headers["content-length"] == "5"
    assert response.headers["content-type"] == "image/gif"
    assert curl_status_and_body(curl("-I", url))[0] == 200


@pytest.mark.parametrize("tool", ["httpx", "curl"])
def test_presigned_delete_removes_the_object(
    s3, signer, bucket: str, tool: str, http: httpx.Client, curl: Curl
) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"to delete")
    url = presign(signer, "delete_object", bucket)
    if tool == "httpx":
        assert http.delete(url).status_code == 204
    else:
        assert curl_status_and_body(curl("-X", "DELETE", url))[0] == 204
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=KEY)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# ---------------------------------------------------------------- PUT


def test_seed_curl_example_for_a_presigned_put_with_content_type(
    s3, signer, bucket: str, tmp_path: Path, curl: Curl
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300 * 1024))
    url = presign(signer, "put_object", bucket, ContentType="image/jpeg")
    # Verbatim: curl -X PUT -H "Content-Type: image/jpeg" --data-binary @photo.jpg "URL"
    out = curl("-X", "PUT", "-H", "Content-Type: image/jpeg", "--data-binary", f"@{photo}", url)
    status, body = curl_status_and_body(out)
    assert status == 200, body
    got = s3.get_object(Bucket=bucket, Key=KEY)
    assert got["ContentType"] == "image/jpeg"
    assert got["Body"].read() == photo.read_bytes()


def test_presigned_put_works_with_httpx(s3, signer, bucket: str, http: httpx.Client) -> None:
    data = os.urandom(100 * 1024)
    url = presign(signer, "put_object", bucket, ContentType="image/jpeg")
    response = http.put(url, content=data, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    got = s3.get_object(Bucket=bucket, Key=KEY)
    assert (got["ContentType"], got["Body"].read()) == ("image/jpeg", data)


def test_presigned_put_with_another_content_type_than_signed_is_refused(
    s3, signer, bucket: str, http: httpx.Client
) -> None:
    url = presign(signer, "put_object", bucket, ContentType="image/jpeg")
    response = http.put(url, content=b"not a jpeg", headers={"content-type": "text/html"})
    assert error_of(response)[:2] == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=KEY)


# ---------------------------------------------------------------- aws s3 presign


def test_aws_cli_presign_url_works_with_httpx(aws: AwsRunner, s3, bucket: str, http: httpx.Client) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"shared with the cli")
    url = aws("s3", "presign", f"s3://{bucket}/{KEY}", "--expires-in", "120").stdout.strip()
    response = http.get(url)
    assert response.status_code == 200, response.text
    assert response.content == b"shared with the cli"


# ---------------------------------------------------------------- refused URLs


def test_expired_presigned_url_is_access_denied(s3, signers: dict, bucket: str, http: httpx.Client) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"too late")
    urls = {name: presign(client, "get_object", bucket, expires=1) for name, client in signers.items()}
    time.sleep(2)
    for name, url in urls.items():
        status, code, message = error_of(http.get(url))
        assert (status, code) == (403, "AccessDenied"), name
        assert "Request has expired" in message, name


def _replace_query_value(url: str, name: str, change) -> str:
    split = urlsplit(url)
    pairs = [(k, change(v) if k == name else v) for k, v in parse_qsl(split.query, keep_blank_values=True)]
    return urlunsplit(split._replace(query=urlencode(pairs)))


def _flip(text: str) -> str:
    """The same signature with its first character changed, still valid hex or base64."""
    return ("1" if text[0] == "0" else "0") + text[1:]


@pytest.mark.parametrize("part", ["key", "signature"])
def test_tampered_presigned_url_is_signature_does_not_match(
    s3, signer, bucket: str, part: str, http: httpx.Client, curl: Curl
) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"original")
    s3.put_object(Bucket=bucket, Key=KEY.replace("1", "2"), Body=b"another")
    url = presign(signer, "get_object", bucket)
    if part == "key":
        tampered = url.replace("1.jpg", "2.jpg")
    else:
        name = "X-Amz-Signature" if "X-Amz-Signature=" in url else "Signature"
        tampered = _replace_query_value(url, name, _flip)
    assert tampered != url
    status, code, _message = error_of(http.get(tampered))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    status, body = curl_status_and_body(curl(tampered))
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_presigned_url_valid_for_more_than_a_week_is_refused(
    s3, signers: dict, bucket: str, http: httpx.Client
) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"x")
    url = presign(signers["sigv4"], "get_object", bucket, expires=604801)
    assert "X-Amz-Expires=604801" in url
    status, code, _message = error_of(http.get(url))
    assert (status, code) == (400, "AuthorizationQueryParametersError")
    # A week exactly is allowed.
    assert http.get(presign(signers["sigv4"], "get_object", bucket, expires=604800)).status_code == 200
