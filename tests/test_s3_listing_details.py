"""Listing details of issue 14, each against moto where moto implements it: keys,
prefixes, delimiters and markers under `encoding-type=url` (read in the raw XML, since
boto3 decodes them), `max-keys=0`, and ListBuckets pagination (max-buckets,
continuation-token, prefix).

encoding-type=url: AWS answers form encoding with '/' kept (a space is '+', '*' kept,
'~' escaped: what MinIO reproduces from AWS, and what AWS users report), where moto
percent-encodes ('%20', '~' kept, '*' escaped). The two agree on every other character,
and both decode to the same keys: the tests compare them so, and pin AWS's forms.
moto is the reference for max-keys=0 on ListObjects v1/v2. It is not one for ListObjectVersions with max-keys=0 (moto answers a
truncated page there, ListObjects does not), for markers (moto leaves them out), nor for
ListBuckets pagination (moto cuts at max-buckets without a ContinuationToken): those are
checked against the S3 API reference.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote_plus

import httpx
import pytest

from tests.conftest import moto_client, new_bucket
from tests.folio_process import FolioProcess
from tests.test_malformed_input import Reply, assert_s3_error, signed

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

# Keys with spaces, reserved characters, a literal '+', a '%', non-ASCII, and characters
# S3 leaves as they are ('/', '*', unreserved ones) or escapes ('~').
KEYS = [
    "star*key",
    "a b/c d.txt",
    "a+b.txt",
    "100%.csv",
    "한글/x.txt",
    "test_file(3).png",
    "tilde~under_score-dot.txt",
    "q?x=1&y=2#frag",
    "run books/x.txt",
]


@pytest.fixture(scope="module")
def moto_s3(moto_url: str):
    return moto_client(moto_url)


@pytest.fixture
def both(s3_aws_like, moto_s3) -> Iterator[dict[str, tuple[Any, str]]]:
    """The same bucket contents (KEYS) on Folio (unversioned, as on AWS) and on moto."""
    name = f"listing-{uuid.uuid4().hex[:12]}"
    moto_s3.create_bucket(Bucket=name)
    folio_buckets = new_bucket(s3_aws_like, "listing")
    folio_bucket = next(folio_buckets)
    for client, b in ((s3_aws_like, folio_bucket), (moto_s3, name)):
        for key in KEYS:
            client.put_object(Bucket=b, Key=key, Body=b"x")
    try:
        yield {"folio": (s3_aws_like, folio_bucket), "moto": (moto_s3, name)}
    finally:
        for key in KEYS:
            moto_s3.delete_object(Bucket=name, Key=key)
        moto_s3.delete_bucket(Bucket=name)
        next(folio_buckets, None)  # empties and deletes the Folio bucket


def folio_get(server: FolioProcess, bucket: str, query: str) -> Reply:
    reply = signed(server, "GET", f"/{bucket}", query=query)
    assert reply.status == 200, reply.body[:500]
    return reply


def moto_get(moto_url: str, bucket: str, query: str) -> Reply:
    # moto does not check signatures: a plain GET is the same request.
    return Reply.of(httpx.get(f"{moto_url}/{bucket}?{query}", timeout=30))


def fields(body: bytes) -> dict[str, Any]:
    """The listing's fields as the raw XML carries them (no decoding)."""
    root = ET.fromstring(body)
    out: dict[str, Any] = {"Keys": [], "Prefixes": []}
    for child in root:
        tag = child.tag.removeprefix(NS)
        if tag in ("Contents", "Version", "DeleteMarker", "Upload"):
            out["Keys"].append(child.findtext(f"{NS}Key"))
        elif tag == "CommonPrefixes":
            out["Prefixes"].append(child.findtext(f"{NS}Prefix"))
        else:
            out[tag] = child.text or ""
    return out


def s3_encoded(text: str) -> str:
    # What AWS sends: form encoding of the UTF-8 bytes, '/' and '*' kept, '~' escaped.
    return quote(text, safe="/*").replace("%20", "+").replace("~", "%7E")


def moto_form(encoded: str) -> str:
    # The same key as moto encodes it (percent-encoding: '%20', '~' kept, '*' escaped).
    return quote(unquote_plus(encoded), safe="/")


# ---------------------------------------------------------------- 1. encoding-type=url


@pytest.mark.parametrize("list_type", ["list-type=2&", ""])
def test_encoded_keys_and_prefixes_match_moto(
    both, folio_aws_like: FolioProcess, moto_url: str, list_type: str
) -> None:
    _, folio_bucket = both["folio"]
    _, moto_bucket = both["moto"]
    for query in (f"{list_type}encoding-type=url", f"{list_type}encoding-type=url&delimiter=%2F"):
        mine = fields(folio_get(folio_aws_like, folio_bucket, query).body)
        theirs = fields(moto_get(moto_url, moto_bucket, query).body)
        assert [moto_form(k) for k in mine["Keys"]] == theirs["Keys"], query
        if list_type:
            # moto encodes ListObjectsV2's common prefixes only (its v1 leaves them raw).
            assert [moto_form(p) for p in mine["Prefixes"]] == theirs["Prefixes"], query
        assert mine["Prefixes"] == [
            s3_encoded(p)
            for p in sorted({k[: k.index("/") + 1] for k in KEYS if "/" in k and "delimiter" in query})
        ]
        assert mine["EncodingType"] == theirs["EncodingType"] == "url"
    flat = fields(folio_get(folio_aws_like, folio_bucket, f"{list_type}encoding-type=url").body)
    assert sorted(flat["Keys"]) == sorted(s3_encoded(k) for k in KEYS)
    # A space is '+', a literal '+' is %2B (so the two stay apart), '/' and '*' stay.
    assert "a+b/c+d.txt" in flat["Keys"] and "a%2Bb.txt" in flat["Keys"]
    assert "test_file%283%29.png" in flat["Keys"]  # the AWS documentation's own example
    assert "tilde%7Eunder_score-dot.txt" in flat["Keys"] and "star*key" in flat["Keys"]
    assert "q%3Fx%3D1%26y%3D2%23frag" in flat["Keys"] and "100%25.csv" in flat["Keys"]


def test_encoded_prefix_delimiter_and_markers(both, folio_aws_like: FolioProcess) -> None:
    _, bucket = both["folio"]
    prefix, delimiter, marker = "a b", " ", "a b/c"
    # (The signing helper signs the query as written: every value fully encoded.)
    q = f"prefix={quote(prefix, safe='')}&delimiter={quote(delimiter, safe='')}&encoding-type=url"
    v1 = fields(folio_get(folio_aws_like, bucket, f"{q}&marker={quote(marker, safe='')}").body)
    assert v1["Prefix"] == "a+b" and v1["Delimiter"] == "+" and v1["Marker"] == "a+b/c"
    # The space delimiter groups "a b/c d.txt" under "a b/c ", after the marker.
    assert v1["Keys"] == [] and v1["Prefixes"] == ["a+b/c+"]
    v2 = fields(
        folio_get(folio_aws_like, bucket, f"list-type=2&{q}&start-after={quote(marker, safe='')}").body
    )
    assert v2["Prefix"] == "a+b" and v2["Delimiter"] == "+" and v2["StartAfter"] == "a+b/c"
    # A page that ends on a common prefix: NextMarker is encoded too.
    page = fields(
        folio_get(folio_aws_like, bucket, "delimiter=%2F&max-keys=1&encoding-type=url&marker=r").body
    )
    assert page["Prefixes"] == ["run+books/"] and page["NextMarker"] == "run+books/"


def test_encoded_version_listing_and_markers(s3_aws_like, folio_aws_like: FolioProcess) -> None:
    for bucket in new_bucket(s3_aws_like, "vlist"):
        s3_aws_like.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for key in ("a b", "a b/c d", "x+y"):
            s3_aws_like.put_object(Bucket=bucket, Key=key, Body=b"1")
        page = fields(folio_get(folio_aws_like, bucket, "versions&encoding-type=url&max-keys=1").body)
        assert page["Keys"] == ["a+b"] and page["NextKeyMarker"] == "a+b"
        rest = fields(
            folio_get(
                folio_aws_like,
                bucket,
                "versions&encoding-type=url&delimiter=%2F&key-marker=a%20b&prefix=a%20",
            ).body
        )
        assert rest["KeyMarker"] == "a+b" and rest["Prefix"] == "a+" and rest["Prefixes"] == ["a+b/"]
        assert sorted(
            fields(folio_get(folio_aws_like, bucket, "versions&encoding-type=url").body)["Keys"]
        ) == [
            "a+b",
            "a+b/c+d",
            "x%2By",
        ]
        # boto3 asks for url encoding itself and decodes: the keys come back as stored.
        listed = s3_aws_like.list_object_versions(Bucket=bucket)
        assert sorted(v["Key"] for v in listed["Versions"]) == ["a b", "a b/c d", "x+y"]
        for v in listed["Versions"]:
            s3_aws_like.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def test_encoded_multipart_upload_listing(s3_aws_like, folio_aws_like: FolioProcess) -> None:
    for bucket in new_bucket(s3_aws_like, "mpulist"):
        ids = [
            (key, s3_aws_like.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
            for key in ("a b/c", "x+y")
        ]
        try:
            flat = fields(folio_get(folio_aws_like, bucket, "uploads&encoding-type=url&key-marker=a%20").body)
            assert flat["Keys"] == ["a+b/c", "x%2By"] and flat["KeyMarker"] == "a+"
            grouped = fields(
                folio_get(folio_aws_like, bucket, "uploads&encoding-type=url&delimiter=%2F").body
            )
            assert grouped["Prefixes"] == ["a+b/"] and grouped["Keys"] == ["x%2By"]
            assert sorted(u["Key"] for u in s3_aws_like.list_multipart_uploads(Bucket=bucket)["Uploads"]) == [
                "a b/c",
                "x+y",
            ]
        finally:
            for key, upload_id in ids:
                s3_aws_like.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


@pytest.mark.parametrize("query", ["versions&encoding-type=base64", "uploads&encoding-type=xml"])
def test_unknown_encoding_type_is_invalid_argument_everywhere(
    folio_aws_like: FolioProcess, both, query
) -> None:
    _, bucket = both["folio"]
    assert_s3_error(signed(folio_aws_like, "GET", f"/{bucket}", query=query), 400, "InvalidArgument")


def test_boto3_round_trips_every_key(both) -> None:
    # boto3 adds encoding-type=url to ListObjects(V2) and unquotes what comes back.
    for name in ("folio", "moto"):
        client, bucket = both[name]
        v2 = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
        v1 = sorted(o["Key"] for o in client.list_objects(Bucket=bucket)["Contents"])
        assert v1 == v2 == sorted(KEYS), name


# ---------------------------------------------------------------- 2. max-keys=0


@pytest.mark.parametrize(
    "query", ["max-keys=0", "list-type=2&max-keys=0", "list-type=2&max-keys=0&delimiter=%2F"]
)
def test_max_keys_zero_is_an_empty_untruncated_page_as_moto(
    both, folio_aws_like: FolioProcess, moto_url: str, query: str
) -> None:
    _, folio_bucket = both["folio"]
    _, moto_bucket = both["moto"]
    mine = fields(folio_get(folio_aws_like, folio_bucket, query).body)
    theirs = fields(moto_get(moto_url, moto_bucket, query).body)
    for got in (mine, theirs):
        assert got["Keys"] == [] and got["Prefixes"] == [] and got["MaxKeys"] == "0"
        assert got["IsTruncated"] == "false"
        assert "NextContinuationToken" not in got and "NextMarker" not in got
    if "list-type=2" in query:
        assert mine["KeyCount"] == theirs["KeyCount"] == "0"


def test_max_keys_zero_on_version_listing(both, folio_aws_like: FolioProcess) -> None:
    _, bucket = both["folio"]
    page = fields(folio_get(folio_aws_like, bucket, "versions&max-keys=0").body)
    assert page["Keys"] == [] and page["IsTruncated"] == "false" and "NextKeyMarker" not in page


# ---------------------------------------------------------------- 3. ListBuckets pages


def test_list_buckets_pages_with_max_buckets_and_continuation_token(s3) -> None:
    prefix = f"lbp-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    try:
        seen: list[str] = []
        tokens = []
        kwargs: dict[str, Any] = {"Prefix": prefix, "MaxBuckets": 2}
        while True:
            page = s3.list_buckets(**kwargs)
            assert page["Prefix"] == prefix
            assert len(page["Buckets"]) <= 2
            seen += [b["Name"] for b in page["Buckets"]]
            token = page.get("ContinuationToken")
            if not token:
                break
            tokens.append(token)
            kwargs["ContinuationToken"] = token
        assert seen == names and len(tokens) == 2
        # boto3's paginator follows the same tokens.
        paged = [
            b["Name"]
            for page in s3.get_paginator("list_buckets").paginate(
                Prefix=prefix, PaginationConfig={"PageSize": 3}
            )
            for b in page["Buckets"]
        ]
        assert paged == names
        # Without max-buckets: all of them, no token.
        whole = s3.list_buckets(Prefix=prefix)
        assert [b["Name"] for b in whole["Buckets"]] == names and "ContinuationToken" not in whole
    finally:
        for name in names:
            s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize("value", ["0", "10001", "-1", "x", "١"])
def test_list_buckets_max_buckets_out_of_range_is_invalid_argument(folio: FolioProcess, value: str) -> None:
    reply = signed(folio, "GET", "/", query=f"max-buckets={quote(value)}")
    assert_s3_error(reply, 400, "InvalidArgument")


def test_list_buckets_bad_continuation_token_is_invalid_argument(folio: FolioProcess) -> None:
    reply = signed(folio, "GET", "/", query="continuation-token=%FF%FE&max-buckets=1")
    assert_s3_error(reply, 400, "InvalidArgument")
