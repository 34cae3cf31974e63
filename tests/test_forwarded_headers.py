"""X-Forwarded-For and X-Forwarded-Proto are believed only from the proxies named in
`[server] forwarded_allow_ips` (empty by default). Otherwise any client on the machine
could claim HTTPS (aws:SecureTransport in a bucket policy) or another address (a policy's
aws:SourceIp, the anonymous per-address rate limit) with a header."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TEST_CONFIG, make_s3_client
from tests.folio_process import FolioProcess, running_server

SPOOF = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}


def _policy(bucket: str) -> str:
    """Anyone may read, but only over HTTPS and only from 203.0.113.7."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"Bool": {"aws:SecureTransport": "true"},
                          "IpAddress": {"aws:SourceIp": "203.0.113.7/32"}},
        }],
    })  # fmt: skip


def _public_object(server: FolioProcess) -> str:
    s3 = make_s3_client(server)
    bucket = f"fwd-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="page.html", Body=b"<p>hi</p>")
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket))
    return f"{server.s3_url}/{bucket}/page.html"


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    config = TEST_CONFIG + '\n[server]\nforwarded_allow_ips = "127.0.0.1"\n'
    yield from running_server(tmp_path_factory, "behind-proxy", config)


def test_a_client_cannot_claim_https_or_an_address_with_a_header(folio: FolioProcess) -> None:
    url = _public_object(folio)
    assert httpx.get(url).status_code == 403
    # The headers a proxy would add, sent by the client itself: still plain HTTP from 127.0.0.1.
    assert httpx.get(url, headers=SPOOF).status_code == 403


def test_a_named_proxy_is_believed(behind_proxy: FolioProcess) -> None:
    url = _public_object(behind_proxy)
    assert httpx.get(url).status_code == 403
    answer = httpx.get(url, headers=SPOOF)
    assert answer.status_code == 200 and answer.content == b"<p>hi</p>"
