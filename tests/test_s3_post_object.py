"""PostObject (browser-based uploads): what boto3's `generate_presigned_post` makes works
from an HTML form in a real Chromium, and from httpx; forms that break their policy are
refused with S3's error codes and store nothing (no object, no blob, nothing in tmp/)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.browser import Browser, Page, open_page, running_chromium, screenshot
from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess, running_server
from tests.web_client import page_server

BODY = b"hello from a browser form\n" + bytes(range(256))


@pytest.fixture(scope="module")
def s3_v4(folio: FolioProcess):
    """boto3 signing POST policies with SigV4 (the default client signs them with SigV2)."""
    return make_s3_client(folio, config=Config(signature_version="s3v4"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with running_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh tab (its own context); each test loads its page with `page.goto`."""
    with open_page(chromium) as page:
        yield page


def s3_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, f"expected {status} {code}: {response.status_code} {response.text}"
    root = ET.fromstring(response.content)
    fields = {child.tag: child.text or "" for child in root}
    assert root.tag == "Error" and fields.get("Code") == code, response.text
    return fields


def disk(server: FolioProcess) -> tuple[set[str], set[str]]:
    blobs = {p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}
    return blobs, {p.name for p in (server.data_dir / "tmp").iterdir()}


def keys_of(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def post_form(
    url: str, fields: dict[str, str], body: bytes = BODY, filename: str = "a.bin"
) -> httpx.Response:
    # httpx writes the data fields first and the file last, as a browser sends a form.
    return httpx.post(
        url, data=fields, files={"file": (filename, body, "application/octet-stream")}, timeout=30
    )


# --- a real browser -------------------------------------------------------------------


def form_page(url: str, fields: dict[str, str]) -> bytes:
    inputs = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>upload form</title></head>
<body><form id="upload" action="{escape(url)}" method="post" enctype="multipart/form-data">
{inputs}
<input type="file" name="file" id="file">
<button type="submit">Upload</button>
</form></body></html>""".encode()


def choose_file(page: Page, path: Path) -> None:
    """What a user does with the file dialog: the file set on the file input."""
    page.set_input_files("#file", path)
    assert page.evaluate("document.getElementById('file').files[0].name") == path.name


def submit_and_wait(page: Page, target_prefix: str) -> str:
    """Submit the form and wait for the browser to show the answer; its page source."""
    page.evaluate("document.getElementById('upload').requestSubmit(), true")
    # Until the answer's document has loaded (its `load` event), 30 s at most.
    page.wait_for_url(lambda url: url.startswith(target_prefix), timeout=30_000)
    return page.evaluate("new XMLSerializer().serializeToString(document)")


def test_boto3_presigned_post_from_an_html_form_in_chromium_stores_the_file_with_its_metadata(
    page: Page, folio: FolioProcess, s3, bucket: str, tmp_path: Path
) -> None:
    # boto3's default client, as a web app's backend would use it.
    post = s3.generate_presigned_post(
        bucket,
        "browser/${filename}",
        Fields={
            "acl": "public-read",
            "Content-Type": "text/plain",
            "x-amz-meta-uploaded-by": "chromium",
            "success_action_status": "201",
        },
        Conditions=[
            {"acl": "public-read"},
            {"Content-Type": "text/plain"},
            {"x-amz-meta-uploaded-by": "chromium"},
            {"success_action_status": "201"},
            ["content-length-range", 1, 10_000],
        ],
        ExpiresIn=300,
    )
    chosen = tmp_path / "notes from the browser.txt"
    chosen.write_bytes(BODY)
    with page_server({"/": form_page(post["url"], post["fields"])}) as origin:
        page.goto(f"{origin}/")
        choose_file(page, chosen)
        answer = submit_and_wait(page, post["url"])
        png = screenshot(page, tmp_path, "post-result").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000

    key = "browser/notes from the browser.txt"
    # 201: the PostResponse document, which Chromium shows as an XML tree.
    # (The serialized page also holds Chromium's rendering of the tree: the first one is the document.)
    document = re.search(r"<PostResponse.*?</PostResponse>", answer, re.DOTALL)
    assert document is not None, answer
    root = ET.fromstring(document.group(0))
    response = {child.tag: child.text for child in root}
    assert response["Bucket"] == bucket and response["Key"] == key
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == BODY
    assert stored["ContentType"] == "text/plain"
    assert stored["Metadata"] == {"uploaded-by": "chromium"}
    assert response["ETag"] == stored["ETag"]
    # acl=public-read: anyone may read it now.
    public = httpx.get(f"{folio.s3_url}/{bucket}/browser/notes%20from%20the%20browser.txt")
    assert public.status_code == 200 and public.content == BODY


# --- httpx: the answers AWS gives ------------------------------------------------------


def test_sigv4_post_default_answer_is_204_with_etag_and_location(s3_v4, bucket: str) -> None:
    post = s3_v4.generate_presigned_post(bucket, "v4/${filename}", ExpiresIn=60)
    assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    reply = post_form(post["url"], post["fields"], filename="x.bin")
    assert reply.status_code == 204, reply.text
    head = s3_v4.head_object(Bucket=bucket, Key="v4/x.bin")
    assert reply.headers["etag"] == head["ETag"]
    assert reply.headers["location"].endswith(f"/{bucket}/v4/x.bin")


def test_success_action_redirect_is_a_303_to_the_url_with_bucket_key_and_etag(s3, bucket: str) -> None:
    target = "https://app.example/done?from=form"
    post = s3.generate_presigned_post(
        bucket,
        "r.bin",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
    )
    reply = post_form(post["url"], post["fields"])
    assert reply.status_code == 303, reply.text
    location = urlsplit(reply.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://app.example/done"
    assert query["from"] == ["form"] and query["bucket"] == [bucket] and query["key"] == ["r.bin"]
    assert query["etag"] == [s3.head_object(Bucket=bucket, Key="r.bin")["ETag"]]


@pytest.mark.parametrize("signer", ["s3", "s3_v4"])
def test_tampered_policy_is_signature_does_not_match_and_stores_nothing(
    request: pytest.FixtureRequest, signer: str, folio: FolioProcess, bucket: str
) -> None:
    client = request.getfixturevalue(signer)
    post = client.generate_presigned_post(
        bucket, "t.bin", Conditions=[["content-length-range", 1, 10]], ExpiresIn=60
    )
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not isinstance(c, list)]
    fields = {**post["fields"], "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    before = disk(folio)
    s3_error(post_form(post["url"], fields), 403, "SignatureDoesNotMatch")
    assert keys_of(client, bucket) == [] and disk(folio) == before


def test_expired_policy_is_access_denied(s3, folio: FolioProcess, bucket: str) -> None:
    post = s3.generate_presigned_post(bucket, "e.bin", ExpiresIn=1)
    time.sleep(1.5)
    before = disk(folio)
    error = s3_error(post_form(post["url"], post["fields"]), 403, "AccessDenied")
    assert error["Message"] == "Invalid according to Policy: Policy expired."
    assert keys_of(s3, bucket) == [] and disk(folio) == before


@pytest.mark.parametrize(
    ("body", "code"), [(b"x" * 101, "EntityTooLarge"), (b"x" * 9, "EntityTooSmall"), (b"", "EntityTooSmall")]
)
def test_file_outside_content_length_range_is_refused(
    s3_v4, folio: FolioProcess, bucket: str, body: bytes, code: str
) -> None:
    post = s3_v4.generate_presigned_post(bucket, "sized.bin", Conditions=[["content-length-range", 10, 100]])
    before = disk(folio)
    s3_error(post_form(post["url"], post["fields"], body=body), 400, code)
    assert keys_of(s3_v4, bucket) == [] and disk(folio) == before


def test_large_file_past_the_range_is_refused_while_it_streams(
    s3_v4, folio: FolioProcess, bucket: str
) -> None:
    post = s3_v4.generate_presigned_post(bucket, "big.bin", Conditions=[["content-length-range", 0, 1024]])
    before = disk(folio)
    error = s3_error(
        post_form(post["url"], post["fields"], body=os.urandom(8 * 1024 * 1024)), 400, "EntityTooLarge"
    )
    assert error["MaxSizeAllowed"] == "1024"
    assert keys_of(s3_v4, bucket) == [] and disk(folio) == before


def test_key_outside_starts_with_is_refused(s3_v4, folio: FolioProcess, bucket: str) -> None:
    post = s3_v4.generate_presigned_post(bucket, "users/alice/${filename}")
    fields = {**post["fields"], "key": "users/bob/stolen.bin"}
    before = disk(folio)
    error = s3_error(post_form(post["url"], fields), 403, "AccessDenied")
    assert (
        error["Message"]
        == 'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "users/alice/"]'
    )
    assert keys_of(s3_v4, bucket) == [] and disk(folio) == before


def test_field_the_policy_does_not_name_is_refused_as_extra_input(
    s3_v4, folio: FolioProcess, bucket: str
) -> None:
    post = s3_v4.generate_presigned_post(bucket, "x.bin")
    before = disk(folio)
    error = s3_error(post_form(post["url"], {**post["fields"], "acl": "public-read"}), 403, "AccessDenied")
    assert error["Message"] == "Invalid according to Policy: Extra input fields: acl"
    # x-ignore-* fields are exempt, as AWS documents.
    assert post_form(post["url"], {**post["fields"], "x-ignore-note": "hi"}).status_code == 204
    assert keys_of(s3_v4, bucket) == ["x.bin"]
    assert disk(folio)[1] == before[1]


def test_fields_after_the_file_are_ignored(s3_v4, bucket: str) -> None:
    post = s3_v4.generate_presigned_post(bucket, "after.bin")
    boundary = "----folioformboundary"
    parts = [(name, value.encode()) for name, value in post["fields"].items()]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in parts
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'.encode()
        + BODY
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="x-amz-meta-late"\r\n\r\nlate\r\n'
        f"--{boundary}--\r\n".encode()
    )
    reply = httpx.post(
        post["url"], content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert reply.status_code == 204, reply.text
    assert s3_v4.head_object(Bucket=bucket, Key="after.bin")["Metadata"] == {}


def test_bad_forms_are_s3_errors(s3_v4, folio: FolioProcess, bucket: str) -> None:
    url = f"{folio.s3_url}/{bucket}"
    post = s3_v4.generate_presigned_post(bucket, "k.bin")
    fields = post["fields"]
    before = disk(folio)
    s3_error(
        httpx.post(url, content=b"key=x", headers={"content-type": "application/x-www-form-urlencoded"}),
        412,
        "PreconditionFailed",
    )
    s3_error(
        httpx.post(
            url, content=b"--b\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=b"}
        ),
        400,
        "MalformedPOSTRequest",
    )
    s3_error(post_form(url, {k: v for k, v in fields.items() if k != "key"}), 400, "InvalidArgument")
    s3_error(httpx.post(url, data=fields, files={"other": ("a", b"a")}), 400, "InvalidArgument")
    s3_error(post_form(url, {**fields, "policy": "not base64!"}), 403, "SignatureDoesNotMatch")
    s3_error(
        post_form(url, {k: v for k, v in fields.items() if k not in ("policy", "x-amz-signature")}),
        403,
        "AccessDenied",
    )
    assert keys_of(s3_v4, bucket) == [] and disk(folio) == before


# --- compared with moto ------------------------------------------------------------------


def test_default_and_redirect_answers_match_moto(s3, moto_url: str, bucket: str) -> None:
    moto = boto3.client(
        "s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    moto.create_bucket(Bucket=bucket)
    target = "https://app.example/done"
    answers = []
    for client in (s3, moto):
        plain = client.generate_presigned_post(bucket, "plain.bin")
        redirect = client.generate_presigned_post(
            bucket,
            "r.bin",
            Fields={"success_action_redirect": target},
            Conditions=[{"success_action_redirect": target}],
        )
        first, second = (
            post_form(plain["url"], plain["fields"]),
            post_form(redirect["url"], redirect["fields"]),
        )
        where = parse_qs(urlsplit(second.headers["location"]).query)
        answers.append((first.status_code, second.status_code, where["bucket"], where["key"]))
        assert client.get_object(Bucket=bucket, Key="plain.bin")["Body"].read() == BODY
    assert answers[0] == answers[1] == (204, 303, [bucket], ["r.bin"])


def test_content_md5_and_checksum_fields_are_verified(s3_v4, folio: FolioProcess, bucket: str) -> None:
    md5 = base64.b64encode(hashlib.md5(BODY).digest()).decode()
    crc = base64.b64encode(zlib.crc32(BODY).to_bytes(4, "big")).decode()
    for name, right, wrong in (
        ("Content-MD5", md5, base64.b64encode(hashlib.md5(b"other").digest()).decode()),
        ("x-amz-checksum-crc32", crc, base64.b64encode(b"\0\0\0\0").decode()),
    ):
        post = s3_v4.generate_presigned_post(bucket, "sum.bin", Conditions=[["starts-with", f"${name}", ""]])
        before = disk(folio)
        s3_error(post_form(post["url"], {**post["fields"], name: wrong}), 400, "BadDigest")
        assert keys_of(s3_v4, bucket) == [] and disk(folio) == before
        assert post_form(post["url"], {**post["fields"], name: right}).status_code == 204
        s3_v4.delete_object(Bucket=bucket, Key="sum.bin")


FETCH_JS = """
(async () => {
  const form = new FormData();
  for (const [name, value] of Object.entries(%(fields)s)) form.append(name, value);
  form.append('file', new Blob([%(text)s], {type: 'text/plain'}), 'fetched.txt');
  try {
    const answer = await fetch(%(url)s, {method: 'POST', body: form});
    return {status: answer.status, etag: answer.headers.get('ETag')};
  } catch (e) {
    return {error: e.name + ': ' + e.message};
  }
})()
"""


def test_cross_origin_fetch_of_the_form_needs_a_cors_rule_for_post(page: Page, s3_v4, bucket: str) -> None:
    post = s3_v4.generate_presigned_post(bucket, "fetched/${filename}")
    with page_server({"/": b"<!doctype html><title>app</title>"}) as origin:
        page.goto(f"{origin}/")
        script = FETCH_JS % {
            "fields": json.dumps(post["fields"]),
            "text": json.dumps("sent by fetch"),
            "url": json.dumps(post["url"]),
        }
        # No CORS rule: the POST reaches S3 (a form POST is a simple request) but the
        # page may not read the answer.
        assert "error" in page.evaluate(script)
        s3_v4.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {"AllowedOrigins": [origin], "AllowedMethods": ["POST"], "ExposeHeaders": ["ETag"]}
                ]
            },
        )
        result = page.evaluate(script)
    assert result.get("status") == 204, result
    stored = s3_v4.get_object(Bucket=bucket, Key="fetched/fetched.txt")
    assert stored["Body"].read() == b"sent by fetch" and result["etag"] == stored["ETag"]


def _policy(document: object) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


HOSTILE_POLICIES = [
    "",
    "////",
    base64.b64encode(b"\xff\xfe").decode(),
    _policy([]),
    _policy({"conditions": []}),
    _policy({"expiration": "tomorrow", "conditions": []}),
    _policy({"expiration": "2099-13-45T99:99:99Z", "conditions": []}),
    _policy({"expiration": "2099-01-01T00:00:00Z", "conditions": {}}),
    _policy({"expiration": "2099-01-01T00:00:00Z", "conditions": [["content-length-range", 1e400, -1]]}),
    _policy({"expiration": "2099-01-01T00:00:00Z", "conditions": [["content-length-range", "١", "2"]]}),
    _policy({"expiration": "2099-01-01T00:00:00Z", "conditions": [["eq", "key", 1], [None], 7, {"a": [1]}]}),
    base64.b64encode(b"[" * 100_000).decode()[:15_000],
]


@pytest.mark.parametrize("policy", HOSTILE_POLICIES)
def test_hostile_policies_are_client_errors(s3_v4, bucket: str, policy: str) -> None:
    post = s3_v4.generate_presigned_post(bucket, "h.bin")
    reply = post_form(post["url"], {**post["fields"], "policy": policy})
    # The signature covers the policy text: anything changed is refused before it is parsed.
    s3_error(reply, 403, "SignatureDoesNotMatch")


def test_hostile_policies_signed_by_their_owner_are_invalid_policy_documents(
    folio: FolioProcess, bucket: str
) -> None:
    from s3proxy.auth.sigv4 import derive_signing_key, sign

    date = time.strftime("%Y%m%d", time.gmtime())
    key = derive_signing_key(folio.secret_key, date, "us-east-1", "s3")
    for policy in HOSTILE_POLICIES[1:]:
        fields = {
            "key": "h.bin",
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": f"{folio.access_key}/{date}/us-east-1/s3/aws4_request",
            "x-amz-date": f"{date}T000000Z",
            "policy": policy,
            "x-amz-signature": sign(key, policy),
        }
        reply = post_form(f"{folio.s3_url}/{bucket}", fields)
        assert reply.status_code == 400, (policy[:80], reply.text)
        assert s3_error(reply, 400, "InvalidPolicyDocument")["Message"].startswith("Invalid Policy: ")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=" + "b" * 200, b"--b\r\n"),
        ("multipart/form-data; boundary=b", b"\x00" * 5000),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nk'),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\n' + b"k" * 30_000 + b"\r\n--b--\r\n",
        ),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nx\r\n--b--\r\n',
        ),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\nx\r\n--b--\r\n',
        ),
        ("multipart/form-data; boundary=b", b"--b--\r\n"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="key"\r\nX-Long: '
            + b"h" * 1_000_000
            + b"\r\n\r\nk",
        ),
        ("text/plain", b"hello"),
        ("", b""),
    ],
)
def test_garbage_forms_are_client_errors_never_500(
    folio: FolioProcess, bucket: str, content_type: str, body: bytes
) -> None:
    before = disk(folio)
    reply = httpx.post(f"{folio.s3_url}/{bucket}", content=body, headers={"content-type": content_type})
    assert 400 <= reply.status_code < 500, reply.text
    assert ET.fromstring(reply.content).tag == "Error"
    assert disk(folio) == before


# `small`: a quota and no rate limit; `slow`: one write a second, and no waiting for a
# token ([limits] max_rate_wait_seconds = 0), so the second write of a second is a 429.
PLANS_CONFIG = """
[limits]
max_rate_wait_seconds = 0.0

[plans.slow]
storage_bytes = 100000000
max_buckets = 10
write_per_second = 1
read_per_second = 0
list_per_second = 0

[plans.small]
storage_bytes = 100000
max_buckets = 10
write_per_second = 0
read_per_second = 0
list_per_second = 0
"""


@pytest.fixture(scope="module")
def small_plan_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FolioProcess]:
    yield from running_server(tmp_path_factory, "folio-post-plans", PLANS_CONFIG)


def test_the_signers_quota_applies_to_the_posted_file(small_plan_server: FolioProcess) -> None:
    created = small_plan_server.create_account(f"post-{os.urandom(6).hex()}@example.com", plan="small")
    client = make_s3_client(small_plan_server, created["accessKey"], created["secretKey"])
    client.create_bucket(Bucket="post-quota")
    post = client.generate_presigned_post("post-quota", "${filename}")
    assert post_form(post["url"], post["fields"], body=b"a" * 60_000, filename="first").status_code == 204
    before = disk(small_plan_server)
    s3_error(
        post_form(post["url"], post["fields"], body=b"b" * 60_000, filename="second"), 403, "QuotaExceeded"
    )
    assert keys_of(client, "post-quota") == ["first"] and disk(small_plan_server) == before


def test_fields_before_the_file_are_limited_to_20_kb(s3_v4, bucket: str) -> None:
    post = s3_v4.generate_presigned_post(
        bucket, "big-fields.bin", Conditions=[["starts-with", "$x-amz-meta-a", ""]]
    )
    reply = post_form(post["url"], {**post["fields"], "x-amz-meta-a": "a" * 21_000})
    s3_error(reply, 400, "MaxPostPreDataLengthExceededError")
    assert keys_of(s3_v4, bucket) == []


def test_header_fields_are_stored_and_line_breaks_in_them_refused(
    s3_v4, folio: FolioProcess, bucket: str
) -> None:
    stored_fields = {
        "Content-Language": "fr",
        "Cache-Control": "max-age=60",
        "Content-Disposition": 'attachment; filename="a.bin"',
        "x-amz-meta-note": "first line",
    }
    conditions = [["starts-with", f"${name}", ""] for name in stored_fields]
    post = s3_v4.generate_presigned_post(bucket, "headers.bin", Conditions=conditions)
    before = disk(folio)
    broken = {**post["fields"], **stored_fields, "x-amz-meta-note": "first line\r\nX-Injected: yes"}
    s3_error(post_form(post["url"], broken), 400, "InvalidArgument")
    assert keys_of(s3_v4, bucket) == [] and disk(folio) == before
    assert post_form(post["url"], {**post["fields"], **stored_fields}).status_code == 204
    head = s3_v4.head_object(Bucket=bucket, Key="headers.bin")
    assert head["ContentLanguage"] == "fr" and head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="a.bin"'
    assert head["Metadata"] == {"note": "first line"}


def test_redirect_urls_with_line_breaks_are_refused_and_unicode_ones_encoded(
    s3_v4, folio: FolioProcess, bucket: str
) -> None:
    post = s3_v4.generate_presigned_post(
        bucket, "redir.bin", Conditions=[["starts-with", "$success_action_redirect", "https://app.example/"]]
    )
    before = disk(folio)
    broken = {**post["fields"], "success_action_redirect": "https://app.example/\r\nSet-Cookie: a=b"}
    s3_error(post_form(post["url"], broken), 400, "InvalidArgument")
    assert keys_of(s3_v4, bucket) == [] and disk(folio) == before
    reply = post_form(
        post["url"], {**post["fields"], "success_action_redirect": "https://app.example/é done"}
    )
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"].startswith("https://app.example/%C3%A9%20done?bucket=")


def test_the_signers_write_rate_applies_to_posted_forms(small_plan_server: FolioProcess) -> None:
    created = small_plan_server.create_account(f"post-{os.urandom(6).hex()}@example.com", plan="slow")
    client = make_s3_client(small_plan_server, created["accessKey"], created["secretKey"])
    client.create_bucket(Bucket="post-rate")
    time.sleep(1.1)  # CreateBucket took this second's write
    post = client.generate_presigned_post("post-rate", "${filename}")
    assert post_form(post["url"], post["fields"], filename="first").status_code == 204
    refused = post_form(post["url"], post["fields"], filename="second")
    s3_error(refused, 429, "TooManyRequests")
    assert int(refused.headers["retry-after"]) >= 1
    assert keys_of(client, "post-rate") == ["first"]
