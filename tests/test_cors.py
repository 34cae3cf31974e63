"""Bucket CORS against the real server: Put/Get/DeleteBucketCors through boto3, and
S3's CORS evaluation seen over HTTP.

Preflights (`OPTIONS`) are sent with plain httpx and no credentials, as a browser
sends them. Actual requests carry an `Origin` added to boto3's signed requests (or go
anonymous through httpx), and their answers, errors included, must carry the CORS
headers of the first rule that allows that origin and method.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from botocore.exceptions import ClientError
from lxml import etree

from tests.conftest import make_s3_client, new_bucket
from tests.folio_process import FolioProcess

APP = "https://app.example.com"
OTHER = "https://evil.example.net"

# Names of every CORS header S3 may put on an answer (httpx headers are case-insensitive).
CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
)

# One rule for the app's origin, as a web app uploading from a browser would set it.
APP_RULE = {
    "ID": "app",
    "AllowedOrigins": [APP],
    "AllowedMethods": ["GET", "PUT", "HEAD"],
    "AllowedHeaders": ["Content-Type", "x-amz-meta-*"],
    "ExposeHeaders": ["ETag", "x-amz-version-id"],
    "MaxAgeSeconds": 600,
}


def put_rules(s3, bucket: str, *rules: dict) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": list(rules)})


def preflight(
    folio: FolioProcess, path: str, origin: str | None, method: str | None, headers: str | None = None
) -> httpx.Response:
    """An unauthenticated OPTIONS, as a browser sends it before a non-simple request."""
    sent: dict[str, str] = {}
    if origin is not None:
        sent["Origin"] = origin
    if method is not None:
        sent["Access-Control-Request-Method"] = method
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return httpx.request("OPTIONS", f"{folio.s3_url}/{path}", headers=sent, timeout=10)


def error_code(response: httpx.Response) -> str | None:
    return etree.fromstring(response.content).findtext("Code")


def header_set(value: str | None) -> set[str]:
    """A comma-separated header value as a set of lower-case names (order and case are free)."""
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def assert_no_cors_headers(headers) -> None:
    present = {name: headers[name] for name in CORS_HEADERS if name in headers}
    assert present == {}, f"CORS headers on an answer no rule allows: {present}"


@pytest.fixture
def other_bucket(s3) -> Iterator[str]:
    """A second bucket, for checks that rules stay on their own bucket."""
    yield from new_bucket(s3, prefix="cors-other")


@pytest.fixture
def origin_client(folio: FolioProcess) -> Callable[[str], object]:
    """A boto3 client (default config) whose every request also carries `Origin: <origin>`."""

    def make(origin: str):
        client = make_s3_client(folio)

        def add_origin(request, **_: object) -> None:
            request.headers["Origin"] = origin

        client.meta.events.register("before-sign.s3.*", add_origin)
        return client

    return make


# --- Put / Get / Delete BucketCors ----------------------------------------------------------


def test_put_get_delete_round_trip(s3, bucket: str) -> None:
    rules = [
        APP_RULE,
        {
            "AllowedOrigins": ["*"],
            "AllowedMethods": ["GET"],
        },
        {
            "ID": "uploads",
            "AllowedOrigins": ["http://*.example.com", "http://localhost:3000"],
            "AllowedMethods": ["PUT", "POST", "DELETE"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["x-amz-request-id"],
            "MaxAgeSeconds": 0,
        },
    ]
    put_rules(s3, bucket, *rules)
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    # boto3 leaves out the elements a rule does not have, so equal dicts mean the same rules in order.
    assert got == rules

    # A second Put replaces the whole configuration.
    put_rules(s3, bucket, rules[1])
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [rules[1]]

    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert excinfo.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_get_bucket_cors_without_a_configuration_is_no_such_cors_configuration(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert excinfo.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_delete_bucket_cors_without_a_configuration_succeeds(s3, bucket: str) -> None:
    # S3 answers 204 whether or not there was a configuration.
    response = s3.delete_bucket_cors(Bucket=bucket)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "get"])
def test_unsupported_method_in_a_rule_is_invalid_request(s3, bucket: str, method: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        put_rules(s3, bucket, {"AllowedOrigins": [APP], "AllowedMethods": ["GET", method]})
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert excinfo.value.response["Error"]["Code"] == "InvalidRequest"
    assert method in excinfo.value.response["Error"]["Message"]
    # Nothing was stored.
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=bucket)


@pytest.mark.parametrize("origin", ["http://*.*.example.com", "*://*", "**"])
def test_origin_with_more_than_one_wildcard_is_refused(s3, bucket: str, origin: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        put_rules(s3, bucket, {"AllowedOrigins": [origin], "AllowedMethods": ["GET"]})
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert excinfo.value.response["Error"]["Code"] == "InvalidRequest"
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=bucket)


def test_an_invalid_put_keeps_the_previous_configuration(s3, bucket: str) -> None:
    put_rules(s3, bucket, APP_RULE)
    with pytest.raises(ClientError, match="InvalidRequest"):
        put_rules(s3, bucket, {"AllowedOrigins": [APP], "AllowedMethods": ["TRACE"]})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [APP_RULE]


def test_cors_configuration_needs_credentials(folio: FolioProcess, s3, bucket: str) -> None:
    """Reading or changing the rules is the owner's business; only preflights are anonymous."""
    put_rules(s3, bucket, APP_RULE)
    get = httpx.get(f"{folio.s3_url}/{bucket}?cors", timeout=10)
    assert get.status_code == 403 and error_code(get) == "AccessDenied"
    delete = httpx.delete(f"{folio.s3_url}/{bucket}?cors", timeout=10)
    assert delete.status_code == 403 and error_code(delete) == "AccessDenied"
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [APP_RULE]


def test_another_account_cannot_read_change_or_delete_the_rules(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, APP_RULE)
    account = folio.create_account(f"cors-{uuid.uuid4().hex[:8]}@example.com")
    stranger = make_s3_client(folio, account["accessKey"], account["secretKey"])
    calls = (
        lambda: stranger.get_bucket_cors(Bucket=bucket),
        lambda: put_rules(stranger, bucket, {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT"]}),
        lambda: stranger.delete_bucket_cors(Bucket=bucket),
    )
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert excinfo.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [APP_RULE]


# --- Preflight ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["bucket", "object"])
def test_preflight_from_an_allowed_origin_passes_with_the_rule_headers(
    folio: FolioProcess, s3, bucket: str, target: str
) -> None:
    put_rules(s3, bucket, APP_RULE)
    path = bucket if target == "bucket" else f"{bucket}/uploads/photo one.jpg"
    # Sent with no Authorization and no signature: S3 answers preflights from the rules alone.
    response = preflight(folio, path, APP, "PUT", "Content-Type, X-Amz-Meta-Author")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert header_set(response.headers["access-control-allow-methods"]) == {"get", "put", "head"}
    assert header_set(response.headers["access-control-allow-headers"]) == {"content-type", "x-amz-meta-author"}
    assert header_set(response.headers["access-control-expose-headers"]) == {"etag", "x-amz-version-id"}
    assert response.headers["access-control-max-age"] == "600"
    # Caches must key the answer on the origin, or another origin could reuse it.
    assert "origin" in header_set(response.headers.get("vary"))


def test_preflight_without_request_headers_passes_and_allows_no_headers(
    folio: FolioProcess, s3, bucket: str
) -> None:
    put_rules(s3, bucket, APP_RULE)
    response = preflight(folio, f"{bucket}/k", APP, "GET")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    assert header_set(response.headers.get("access-control-allow-headers")) == set()


def test_preflight_from_another_origin_is_forbidden(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, APP_RULE)
    for origin in (OTHER, "http://app.example.com", "https://app.example.com:8443", "https://APP.example.com.evil"):
        response = preflight(folio, f"{bucket}/k", origin, "GET")
        assert response.status_code == 403, (origin, response.text)
        assert error_code(response) == "AccessForbidden"
        assert_no_cors_headers(response.headers)


def test_preflight_for_a_method_the_rule_does_not_allow_is_forbidden(
    folio: FolioProcess, s3, bucket: str
) -> None:
    put_rules(s3, bucket, APP_RULE)
    for method in ("DELETE", "POST"):
        response = preflight(folio, f"{bucket}/k", APP, method)
        assert response.status_code == 403, (method, response.text)
        assert error_code(response) == "AccessForbidden"
        assert_no_cors_headers(response.headers)


def test_preflight_with_a_request_header_the_rule_does_not_allow_is_forbidden(
    folio: FolioProcess, s3, bucket: str
) -> None:
    put_rules(s3, bucket, APP_RULE)
    # Each of these names one header outside Content-Type and x-amz-meta-*: one is enough to refuse.
    for requested in ("x-custom-header", "Content-Type, Authorization", "x-amz-acl"):
        response = preflight(folio, f"{bucket}/k", APP, "PUT", requested)
        assert response.status_code == 403, (requested, response.text)
        assert error_code(response) == "AccessForbidden"
    # Matching is case-insensitive both ways: the rule says Content-Type, the browser sends lower case.
    ok = preflight(folio, f"{bucket}/k", APP, "PUT", "content-type,X-AMZ-META-a")
    assert ok.status_code == 200, ok.text


def test_allowed_header_star_allows_any_request_header(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, {"AllowedOrigins": [APP], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]})
    response = preflight(folio, f"{bucket}/k", APP, "PUT", "authorization, x-amz-date, x-anything-at-all")
    assert response.status_code == 200, response.text
    assert header_set(response.headers["access-control-allow-headers"]) == {
        "authorization",
        "x-amz-date",
        "x-anything-at-all",
    }


def test_wildcard_origin_pattern_matches_subdomains_only(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, {"AllowedOrigins": ["http://*.example.com"], "AllowedMethods": ["GET", "PUT"]})
    for origin in ("http://www.example.com", "http://a.b.example.com"):
        response = preflight(folio, f"{bucket}/k", origin, "PUT")
        assert response.status_code == 200, (origin, response.text)
        # A pattern rule answers with the origin itself, never the pattern.
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
    for origin in ("https://www.example.com", "http://example.com", "http://www.example.com.evil.net"):
        response = preflight(folio, f"{bucket}/k", origin, "PUT")
        assert response.status_code == 403, (origin, response.text)


def test_star_origin_answers_star_without_credentials(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "MaxAgeSeconds": 30})
    response = preflight(folio, f"{bucket}/k", "http://anything.test:1234", "GET")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    # A browser refuses credentials with '*', so S3 does not offer them.
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["access-control-max-age"] == "30"


def test_first_matching_rule_wins(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(
        s3,
        bucket,
        {"AllowedOrigins": [APP], "AllowedMethods": ["GET"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 100},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT"], "ExposeHeaders": ["x-amz-request-id"]},
    )
    first = preflight(folio, f"{bucket}/k", APP, "GET")
    assert first.status_code == 200, first.text
    assert first.headers["access-control-allow-origin"] == APP
    assert header_set(first.headers["access-control-expose-headers"]) == {"etag"}
    assert first.headers["access-control-max-age"] == "100"
    # The first rule does not allow PUT, so the second one answers for the same origin.
    second = preflight(folio, f"{bucket}/k", APP, "PUT")
    assert second.status_code == 200, second.text
    assert second.headers["access-control-allow-origin"] == "*"
    assert header_set(second.headers["access-control-expose-headers"]) == {"x-amz-request-id"}
    assert "access-control-max-age" not in second.headers


def test_preflight_needs_origin_and_request_method(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, APP_RULE)
    for origin, method in ((None, "GET"), (APP, None), (None, None)):
        response = preflight(folio, f"{bucket}/k", origin, method)
        assert response.status_code == 400, (origin, method, response.text)
        assert_no_cors_headers(response.headers)


def test_preflight_without_a_cors_configuration_is_forbidden(folio: FolioProcess, bucket: str) -> None:
    response = preflight(folio, f"{bucket}/k", APP, "GET")
    assert response.status_code == 403, response.text
    assert error_code(response) == "AccessForbidden"
    assert_no_cors_headers(response.headers)


def test_preflight_ignores_credentials_that_are_wrong(folio: FolioProcess, s3, bucket: str) -> None:
    """A browser never signs a preflight; a stray bad Authorization must not change the answer."""
    put_rules(s3, bucket, APP_RULE)
    response = httpx.request(
        "OPTIONS",
        f"{folio.s3_url}/{bucket}/k",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "GET",
            "Authorization": "AWS4-HMAC-SHA256 Credential=NOSUCHKEY/20200101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=00",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP


def test_after_delete_bucket_cors_preflight_is_forbidden(folio: FolioProcess, s3, bucket: str) -> None:
    put_rules(s3, bucket, APP_RULE)
    assert preflight(folio, f"{bucket}/k", APP, "GET").status_code == 200
    s3.delete_bucket_cors(Bucket=bucket)
    response = preflight(folio, f"{bucket}/k", APP, "GET")
    assert response.status_code == 403, response.text
    assert error_code(response) == "AccessForbidden"


def test_rules_are_per_bucket(folio: FolioProcess, s3, bucket: str, other_bucket: str) -> None:
    put_rules(s3, bucket, APP_RULE)
    assert preflight(folio, f"{bucket}/k", APP, "GET").status_code == 200
    assert preflight(folio, f"{other_bucket}/k", APP, "GET").status_code == 403


# --- Actual requests -----------------------------------------------------------------------------


def test_actual_put_and_get_from_an_allowed_origin_carry_the_headers(
    s3, bucket: str, origin_client: Callable[[str], object]
) -> None:
    put_rules(s3, bucket, APP_RULE)
    client = origin_client(APP)
    put = client.put_object(Bucket=bucket, Key="a.txt", Body=b"hello cors")
    headers = put["ResponseMetadata"]["HTTPHeaders"]  # botocore lower-cases the names
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-credentials"] == "true"
    assert header_set(headers["access-control-expose-headers"]) == {"etag", "x-amz-version-id"}
    assert "origin" in header_set(headers.get("vary"))

    get = client.get_object(Bucket=bucket, Key="a.txt")
    assert get["Body"].read() == b"hello cors"
    headers = get["ResponseMetadata"]["HTTPHeaders"]
    assert headers["access-control-allow-origin"] == APP
    assert header_set(headers["access-control-expose-headers"]) == {"etag", "x-amz-version-id"}


def test_actual_get_of_a_missing_key_gets_the_headers_on_the_404(
    s3, bucket: str, origin_client: Callable[[str], object]
) -> None:
    """Without CORS headers on the error a browser hides the 404 from the page entirely."""
    put_rules(s3, bucket, APP_RULE)
    with pytest.raises(ClientError) as excinfo:
        origin_client(APP).get_object(Bucket=bucket, Key="missing")
    response = excinfo.value.response
    assert response["Error"]["Code"] == "NoSuchKey"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert response["ResponseMetadata"]["HTTPHeaders"]["access-control-allow-origin"] == APP
    assert header_set(response["ResponseMetadata"]["HTTPHeaders"]["access-control-expose-headers"]) == {
        "etag",
        "x-amz-version-id",
    }
    # HEAD has no error body, so the headers are all a page gets; they must be there too.
    with pytest.raises(ClientError) as excinfo:
        origin_client(APP).head_object(Bucket=bucket, Key="missing")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["access-control-allow-origin"] == APP


def test_anonymous_get_of_a_private_object_gets_the_headers_on_the_403(
    folio: FolioProcess, s3, bucket: str
) -> None:
    put_rules(s3, bucket, APP_RULE)
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    response = httpx.get(f"{folio.s3_url}/{bucket}/private", headers={"Origin": APP}, timeout=10)
    assert response.status_code == 403
    assert error_code(response) == "AccessDenied"
    assert response.headers["access-control-allow-origin"] == APP
    assert b"secret" not in response.content


def test_actual_requests_from_another_origin_get_no_cors_headers(
    folio: FolioProcess, s3, bucket: str, origin_client: Callable[[str], object]
) -> None:
    put_rules(s3, bucket, APP_RULE)
    client = origin_client(OTHER)
    # The request itself is served (S3 does not refuse it: the browser does, lacking the headers).
    put = client.put_object(Bucket=bucket, Key="b.txt", Body=b"x")
    assert_no_cors_headers(put["ResponseMetadata"]["HTTPHeaders"])
    get = client.get_object(Bucket=bucket, Key="b.txt")
    assert get["Body"].read() == b"x"
    assert_no_cors_headers(get["ResponseMetadata"]["HTTPHeaders"])
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="missing")
    assert_no_cors_headers(excinfo.value.response["ResponseMetadata"]["HTTPHeaders"])
    # Without any Origin there is nothing to answer for either.
    plain = s3.get_object(Bucket=bucket, Key="b.txt")
    assert_no_cors_headers(plain["ResponseMetadata"]["HTTPHeaders"])


def test_actual_request_with_a_method_the_rule_does_not_allow_gets_no_cors_headers(
    s3, bucket: str, origin_client: Callable[[str], object]
) -> None:
    put_rules(s3, bucket, {"AllowedOrigins": [APP], "AllowedMethods": ["GET"]})
    client = origin_client(APP)
    put = client.put_object(Bucket=bucket, Key="c.txt", Body=b"x")
    assert_no_cors_headers(put["ResponseMetadata"]["HTTPHeaders"])
    delete = client.delete_object(Bucket=bucket, Key="c.txt")
    assert_no_cors_headers(delete["ResponseMetadata"]["HTTPHeaders"])
    with pytest.raises(ClientError) as excinfo:
        client.get_object(Bucket=bucket, Key="c.txt")  # deleted: a 404, and GET is allowed
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["access-control-allow-origin"] == APP


def test_actual_request_from_a_wildcard_origin_gets_star(
    s3, bucket: str, origin_client: Callable[[str], object]
) -> None:
    put_rules(s3, bucket, {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT"], "ExposeHeaders": ["ETag"]})
    client = origin_client("http://localhost:5173")
    client.put_object(Bucket=bucket, Key="d.txt", Body=b"star")
    headers = client.get_object(Bucket=bucket, Key="d.txt")["ResponseMetadata"]["HTTPHeaders"]
    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers
    assert header_set(headers["access-control-expose-headers"]) == {"etag"}


def test_actual_requests_after_delete_bucket_cors_get_no_headers(
    s3, bucket: str, origin_client: Callable[[str], object]
) -> None:
    put_rules(s3, bucket, APP_RULE)
    client = origin_client(APP)
    client.put_object(Bucket=bucket, Key="e.txt", Body=b"e")
    s3.delete_bucket_cors(Bucket=bucket)
    get = client.get_object(Bucket=bucket, Key="e.txt")
    assert_no_cors_headers(get["ResponseMetadata"]["HTTPHeaders"])
