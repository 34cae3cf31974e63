"""ListObjectsV2 and ListObjects (v1) against the real server: pagination over 2,500 keys,
prefix and delimiter, start-after, max-keys, encoding-type=url, fetch-owner, markers, bad
arguments; then the same listing calls against moto, as a reference S3, compared answer by
answer."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, unquote_plus

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.handlers import set_list_objects_encoding_type_url

from tests.conftest import make_s3_client
from tests.folio_process import FolioProcess


def s3_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a failed boto3 call."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def put_many(s3, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b""), keys))


def empty_and_delete(s3, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def keys_of(page: dict) -> list[str]:
    return [o["Key"] for o in page.get("Contents", [])]


def prefixes_of(page: dict) -> list[str]:
    return [p["Prefix"] for p in page.get("CommonPrefixes", [])]


# ---------------------------------------------------------------- 2,500 keys

# Several "directories" and flat names, so order is not insertion order.
BIG_KEYS = sorted(
    [f"photos/{year}/{i:04d}.jpg" for year in (2019, 2020, 2021) for i in range(600)]
    + [f"docs/{i:03d}.txt" for i in range(500)]
    + [f"z-{i:03d}" for i in range(200)]
)


@pytest.fixture(scope="module")
def big_bucket(s3) -> Iterator[str]:
    assert len(BIG_KEYS) == 2500
    name = f"list-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    put_many(s3, name, BIG_KEYS)
    yield name
    empty_and_delete(s3, name)


@pytest.mark.parametrize("page_size", [1000, 333])
def test_v2_paginator_returns_every_key_once_in_order(s3, big_bucket: str, page_size: int) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket=big_bucket, PaginationConfig={"PageSize": page_size}))
    keys = [k for page in pages for k in keys_of(page)]
    assert keys == BIG_KEYS
    expected_pages = -(-len(BIG_KEYS) // page_size)
    assert len(pages) == expected_pages
    for page in pages[:-1]:
        assert page["IsTruncated"] is True
        assert page["KeyCount"] == page_size
        assert page["NextContinuationToken"]
    assert pages[-1]["IsTruncated"] is False
    assert pages[-1]["KeyCount"] == len(BIG_KEYS) - page_size * (expected_pages - 1)
    assert "NextContinuationToken" not in pages[-1]


def test_v2_default_page_is_1000_keys(s3, big_bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=big_bucket)
    assert keys_of(page) == BIG_KEYS[:1000]
    assert page["KeyCount"] == 1000
    assert page["MaxKeys"] == 1000
    assert page["IsTruncated"] is True


def test_v1_paginator_returns_every_key_once_in_order(s3, big_bucket: str) -> None:
    paginator = s3.get_paginator("list_objects")
    pages = list(paginator.paginate(Bucket=big_bucket, PaginationConfig={"PageSize": 1000}))
    assert [k for page in pages for k in keys_of(page)] == BIG_KEYS
    assert [page["IsTruncated"] for page in pages] == [True, True, False]


def test_v2_paginator_with_prefix_and_delimiter(s3, big_bucket: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(
        paginator.paginate(
            Bucket=big_bucket, Prefix="photos/", Delimiter="/", PaginationConfig={"PageSize": 2}
        )
    )
    assert [p for page in pages for p in prefixes_of(page)] == [
        "photos/2019/",
        "photos/2020/",
        "photos/2021/",
    ]
    assert [k for page in pages for k in keys_of(page)] == []
    pages = list(
        paginator.paginate(Bucket=big_bucket, Prefix="photos/2020/", PaginationConfig={"PageSize": 250})
    )
    assert [k for page in pages for k in keys_of(page)] == [
        k for k in BIG_KEYS if k.startswith("photos/2020/")
    ]


def test_v2_top_level_delimiter_mixes_keys_and_prefixes(s3, big_bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=big_bucket, Delimiter="/")
    assert prefixes_of(page) == ["docs/", "photos/"]
    assert keys_of(page) == [k for k in BIG_KEYS if k.startswith("z-")]
    assert page["KeyCount"] == 202
    assert page["IsTruncated"] is False


def test_huge_max_keys_is_capped_at_1000(folio: FolioProcess, big_bucket: str) -> None:
    client = unvalidated_client(folio)
    page = client.list_objects_v2(Bucket=big_bucket, MaxKeys=100_000)
    assert len(keys_of(page)) == 1000
    assert page["IsTruncated"] is True
    page = client.list_objects(Bucket=big_bucket, MaxKeys=100_000)
    assert len(keys_of(page)) == 1000
    assert page["IsTruncated"] is True


def test_start_after_skips_to_the_next_key(s3, big_bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=big_bucket, StartAfter="docs/250.txt", MaxKeys=3)
    assert keys_of(page) == ["docs/251.txt", "docs/252.txt", "docs/253.txt"]
    assert page["StartAfter"] == "docs/250.txt"
    # A start-after between keys, and one past the end.
    assert keys_of(s3.list_objects_v2(Bucket=big_bucket, StartAfter="docs/250.zzz", MaxKeys=1)) == [
        "docs/251.txt"
    ]
    past = s3.list_objects_v2(Bucket=big_bucket, StartAfter="zzz")
    assert keys_of(past) == []
    assert past["KeyCount"] == 0
    assert past["IsTruncated"] is False


def test_start_after_with_prefix_lists_the_rest_of_the_prefix(s3, big_bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=big_bucket, Prefix="docs/", StartAfter="docs/495.txt")
    assert keys_of(page) == [f"docs/{i}.txt" for i in range(496, 500)]
    # start-after before the prefix: the whole prefix.
    page = s3.list_objects_v2(Bucket=big_bucket, Prefix="z-", StartAfter="a")
    assert len(keys_of(page)) == 200


# ---------------------------------------------------------------- a small tree

TREE = sorted(
    [
        "a",
        "a/",
        "a/b",
        "a/b/",
        "a/b/c",
        "a/c",
        "ab",
        "b/1",
        "b/2",
        "c+d/e",
        "space dir/file 1",
        "ü/1",
        "ü/2",
        "zz",
    ]
)


@pytest.fixture(scope="module")
def tree(s3) -> Iterator[str]:
    name = f"tree-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    put_many(s3, name, TREE)
    yield name
    empty_and_delete(s3, name)


def test_delimiter_groups_common_prefixes_at_the_top(s3, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Delimiter="/")
    assert keys_of(page) == ["a", "ab", "zz"]
    assert prefixes_of(page) == ["a/", "b/", "c+d/", "space dir/", "ü/"]
    assert page["KeyCount"] == 8


def test_prefix_equal_to_a_key_lists_that_key_and_below(s3, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Prefix="a/", Delimiter="/")
    assert keys_of(page) == ["a/", "a/b", "a/c"]
    assert prefixes_of(page) == ["a/b/"]
    page = s3.list_objects_v2(Bucket=tree, Prefix="a/b")
    assert keys_of(page) == ["a/b", "a/b/", "a/b/c"]


def test_multi_character_delimiter(s3, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Delimiter="b/")
    assert prefixes_of(page) == ["a/b/", "b/"]
    assert keys_of(page) == ["a", "a/", "a/b", "a/c", "ab", "c+d/e", "space dir/file 1", "zz", "ü/1", "ü/2"]


def test_max_keys_counts_keys_and_prefixes_together(s3, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=3)
    # In byte order "a" < "a/" < "ab": the first three items are a, a/ (prefix), ab.
    assert keys_of(page) == ["a", "ab"]
    assert prefixes_of(page) == ["a/"]
    assert page["KeyCount"] == 3
    assert page["IsTruncated"] is True


def test_v2_pages_with_delimiter_cover_everything_once(s3, tree: str) -> None:
    seen_keys: list[str] = []
    seen_prefixes: list[str] = []
    kwargs: dict = {"Bucket": tree, "Delimiter": "/", "MaxKeys": 1}
    while True:
        page = s3.list_objects_v2(**kwargs)
        assert page["KeyCount"] == 1
        seen_keys += keys_of(page)
        seen_prefixes += prefixes_of(page)
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert seen_keys == ["a", "ab", "zz"]
    assert seen_prefixes == ["a/", "b/", "c+d/", "space dir/", "ü/"]


def test_start_after_inside_a_common_prefix_does_not_repeat_that_prefix(s3, tree: str) -> None:
    # Every key under "a/" rolls up into the common prefix "a/", which sorts before
    # "a/b": the listing resumes after the whole prefix (as AWS, Ceph RGW and moto do).
    for start_after in ("a/b", "a/b/", "a/"):
        page = s3.list_objects_v2(Bucket=tree, Delimiter="/", StartAfter=start_after)
        assert keys_of(page) == ["ab", "zz"], start_after
        assert prefixes_of(page) == ["b/", "c+d/", "space dir/", "ü/"], start_after
        v1 = s3.list_objects(Bucket=tree, Delimiter="/", Marker=start_after)
        assert (keys_of(v1), prefixes_of(v1)) == (keys_of(page), prefixes_of(page)), start_after


def test_start_after_ending_with_a_delimiter_inside_the_prefix_lists_the_rest(s3, tree: str) -> None:
    # With prefix "a/b" the delimiter "b" only counts after the prefix: "a/b" is a plain key here.
    page = s3.list_objects_v2(Bucket=tree, Prefix="a/b", Delimiter="b", StartAfter="a/b")
    assert keys_of(page) == ["a/b/", "a/b/c"]
    assert prefixes_of(page) == []


def test_max_keys_zero_returns_nothing(s3, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, MaxKeys=0)
    assert keys_of(page) == []
    assert page["KeyCount"] == 0


def test_fetch_owner_adds_the_owner_only_when_asked(s3, tree: str) -> None:
    owner_id = s3.list_buckets()["Owner"]["ID"]
    with_owner = s3.list_objects_v2(Bucket=tree, FetchOwner=True, MaxKeys=3)
    assert [o["Owner"]["ID"] for o in with_owner["Contents"]] == [owner_id] * 3
    without = s3.list_objects_v2(Bucket=tree, MaxKeys=3)
    assert all("Owner" not in o for o in without["Contents"])
    # ListObjects v1 always carries the owner.
    assert all(o["Owner"]["ID"] == owner_id for o in s3.list_objects(Bucket=tree)["Contents"])


def test_listing_entries_carry_size_etag_and_date(s3, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="sized", Body=b"12345")
    entry = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert entry["Key"] == "sized"
    assert entry["Size"] == 5
    assert entry["ETag"] == put["ETag"]
    assert entry["StorageClass"] == "STANDARD"
    assert entry["LastModified"] == s3.head_object(Bucket=bucket, Key="sized")["LastModified"]


def test_v1_next_marker_is_given_with_a_delimiter_and_continues_the_listing(s3, tree: str) -> None:
    page = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2)
    assert keys_of(page) == ["a"]
    assert prefixes_of(page) == ["a/"]
    assert page["IsTruncated"] is True
    assert page["NextMarker"] == "a/"
    page = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2, Marker=page["NextMarker"])
    assert page["Marker"] == "a/"
    assert keys_of(page) == ["ab"]
    assert prefixes_of(page) == ["b/"]
    assert page["NextMarker"] == "b/"


def test_v1_without_delimiter_has_no_next_marker_and_continues_from_the_last_key(s3, tree: str) -> None:
    page = s3.list_objects(Bucket=tree, MaxKeys=4)
    assert keys_of(page) == TREE[:4]
    assert page["IsTruncated"] is True
    # AWS: NextMarker only with a delimiter; clients continue from the last key.
    assert "NextMarker" not in page
    page = s3.list_objects(Bucket=tree, MaxKeys=4, Marker=TREE[3])
    assert keys_of(page) == TREE[4:8]


def test_list_of_missing_bucket_is_no_such_bucket(s3) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=f"missing-{uuid.uuid4().hex}")
    assert s3_error(exc) == (404, "NoSuchBucket")


# ---------------------------------------------------------------- encoding-type=url

ODD_KEYS = sorted(
    [
        "a b/c d.txt",
        "plus+sign",
        "percent%25literal",
        "100%",
        "ünï/cødé ☃.txt",
        "amp&lt<gt>",
        "ctrl\x01char",
        "tab\there",
        "new\nline",
    ]
)


@pytest.fixture(scope="module")
def odd_bucket(s3) -> Iterator[str]:
    name = f"odd-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    put_many(s3, name, ODD_KEYS)
    yield name
    # One by one: XML 1.0 cannot carry U+0001, so DeleteObjects cannot name "ctrl\x01char".
    for key in ODD_KEYS:
        s3.delete_object(Bucket=name, Key=key)
    s3.delete_bucket(Bucket=name)


def test_boto3_default_listing_round_trips_odd_keys(s3, odd_bucket: str) -> None:
    # boto3 asks for encoding-type=url on its own and decodes the answer.
    assert keys_of(s3.list_objects_v2(Bucket=odd_bucket)) == ODD_KEYS
    assert keys_of(s3.list_objects(Bucket=odd_bucket)) == ODD_KEYS


def test_encoding_type_url_encodes_keys_as_s3_does(s3, odd_bucket: str) -> None:
    page = s3.list_objects_v2(Bucket=odd_bucket, EncodingType="url")
    assert page["EncodingType"] == "url"
    raw = keys_of(page)
    assert [unquote_plus(k) for k in raw] == ODD_KEYS
    encoded = dict(zip(ODD_KEYS, raw, strict=True))
    # As AWS answers: space as '+', '+' and '%' escaped, UTF-8 bytes escaped, '/' kept.
    assert encoded["a b/c d.txt"] == "a+b/c+d.txt"
    assert encoded["plus+sign"] == "plus%2Bsign"
    assert encoded["100%"] == "100%25"
    assert encoded["ünï/cødé ☃.txt"] == "%C3%BCn%C3%AF/c%C3%B8d%C3%A9+%E2%98%83.txt"
    assert encoded["ctrl\x01char"] == "ctrl%01char"
    assert all(k.isascii() and k.isprintable() and " " not in k for k in raw)


def test_encoding_type_url_encodes_prefixes_and_echoed_parameters(s3, odd_bucket: str) -> None:
    v2 = s3.list_objects_v2(Bucket=odd_bucket, EncodingType="url", Delimiter=" ", StartAfter="a b")
    assert v2["Delimiter"] == "+"
    assert v2["StartAfter"] == "a+b"
    v2 = s3.list_objects_v2(Bucket=odd_bucket, EncodingType="url", Prefix="ünï/", Delimiter="/")
    assert v2["Prefix"] == "%C3%BCn%C3%AF/"
    top = s3.list_objects_v2(Bucket=odd_bucket, EncodingType="url", Delimiter="/")
    assert "a+b/" in prefixes_of(top)
    assert "%C3%BCn%C3%AF/" in prefixes_of(top)
    v1 = s3.list_objects(Bucket=odd_bucket, EncodingType="url", Delimiter="/", Marker="a b", MaxKeys=1)
    assert v1["Marker"] == "a+b"
    assert prefixes_of(v1) == ["a+b/"]
    assert v1["NextMarker"] == "a+b/"


# ---------------------------------------------------------------- bad arguments


def unvalidated_client(folio: FolioProcess):
    """boto3 that sends parameter values its model would refuse."""
    return make_s3_client(folio, config=Config(parameter_validation=False))


@pytest.mark.parametrize("max_keys", [-1, "abc", "1.5", ""])
def test_bad_max_keys_is_invalid_argument(folio: FolioProcess, tree: str, max_keys: object) -> None:
    client = unvalidated_client(folio)
    for call in (client.list_objects_v2, client.list_objects):
        with pytest.raises(ClientError) as exc:
            call(Bucket=tree, MaxKeys=max_keys)
        assert s3_error(exc) == (400, "InvalidArgument")


def test_unknown_encoding_type_is_invalid_argument(folio: FolioProcess, tree: str) -> None:
    client = unvalidated_client(folio)
    with pytest.raises(ClientError) as exc:
        client.list_objects_v2(Bucket=tree, EncodingType="base64")
    assert s3_error(exc) == (400, "InvalidArgument")


def test_garbage_continuation_token_is_invalid_argument(s3, tree: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=tree, ContinuationToken="!!not a token!!")
    assert s3_error(exc) == (400, "InvalidArgument")


# ---------------------------------------------------------------- moto as the reference

# ~300 keys: nested prefixes, keys equal to a prefix, unicode, spaces, '+', '%'.
REFERENCE_KEYS = sorted(
    {f"dir{i}/sub{j}/file{k}.txt" for i in range(4) for j in range(4) for k in range(5)}
    | {f"deep/{i % 5}/{i:03d}" for i in range(100)}
    | {f"flat-{i:03d}" for i in range(40)}
    | {f"x-{i:02d}-key" for i in range(30)}
    | {
        "a",
        "a/",
        "a/b",
        "a/b/",
        "a/b/c",
        "a/b//c",
        "a//b",
        "ab",
        "a-b",
        "a+b",
        "a b",
        "a%20b",
        "/root",
        "//double",
        "ü/1",
        "ü/2",
        "üb",
        "z☃/x",
        "日本/語",
        "emoji😀",
        "é",
        "e\u0301",
        "space dir/file 1",
        "space dir/file 2",
        " lead",
        "trail ",
        "plus+dir/x",
        "c++/main.cpp",
        "percent%/x",
        "%2F",
    }
)


def raw_listing_client(endpoint_url: str, access_key: str, secret_key: str):
    """boto3 that sends exactly the listing parameters given: no automatic encoding-type=url."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(max_pool_connections=10),
    )
    for operation in ("ListObjects", "ListObjectsV2"):
        client.meta.events.unregister(
            f"before-parameter-build.s3.{operation}", set_list_objects_encoding_type_url
        )
    return client


@pytest.fixture(scope="module")
def reference_pair(folio: FolioProcess, moto_url: str) -> Iterator[tuple[object, object, str]]:
    """(folio client, moto client, bucket name), the same keys loaded on both."""
    folio_client = raw_listing_client(folio.s3_url, folio.access_key, folio.secret_key)
    moto_client = raw_listing_client(moto_url, "testing", "testing")
    name = f"ref-{uuid.uuid4().hex[:16]}"
    for client in (folio_client, moto_client):
        client.create_bucket(Bucket=name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda c: put_many(c, name, REFERENCE_KEYS), (folio_client, moto_client)))
    yield folio_client, moto_client, name
    empty_and_delete(make_s3_client(folio), name)


def comparable(page: dict, *, encoded: bool, moto: bool = False) -> dict:
    """Keys, CommonPrefixes and IsTruncated of one page, decoded when encoding-type=url was asked.

    moto encodes with urllib's quote, so a space is %20 where AWS writes '+' (AWS's form is
    asserted for Folio in test_encoding_type_url_encodes_keys_as_s3_does); unquote reads
    moto's form, unquote_plus AWS's."""
    decode = (unquote if moto else unquote_plus) if encoded else (lambda s: s)
    return {
        "Keys": [decode(k) for k in keys_of(page)],
        "CommonPrefixes": [decode(p) for p in prefixes_of(page)],
        "IsTruncated": page["IsTruncated"],
    }


def list_v1_like_v2(client, params: dict) -> dict:
    """ListObjects with v2's parameters: start-after becomes the marker."""
    params = dict(params)
    if "StartAfter" in params:
        params["Marker"] = params.pop("StartAfter")
    return client.list_objects(**params)


GRID_PREFIXES = ["", "a", "a/", "a/b", "dir1/", "ü", "space dir/", "x-"]
GRID_DELIMITERS = [None, "/", "-", "b"]
GRID_START_AFTER = [None, "a/b", "dir1/sub2/file3.txt", "m"]
GRID_MAX_KEYS = [None, 1, 3, 1000]
GRID_ENCODING = [None, "url"]


def listing_grid() -> Iterator[dict]:
    """Every prefix x delimiter x start-after, with max-keys and encoding-type cycling."""
    cycle = itertools.cycle(itertools.product(GRID_MAX_KEYS, GRID_ENCODING))
    for prefix, delimiter, start_after in itertools.product(GRID_PREFIXES, GRID_DELIMITERS, GRID_START_AFTER):
        max_keys, encoding = next(cycle)
        params: dict = {"Prefix": prefix}
        if delimiter is not None:
            params["Delimiter"] = delimiter
        if start_after is not None:
            params["StartAfter"] = start_after
        if max_keys is not None:
            params["MaxKeys"] = max_keys
        if encoding is not None:
            params["EncodingType"] = encoding
        yield params


def differences(ours: dict, expected: dict) -> dict:
    """What differs between two comparable pages, briefly: extra and missing entries."""
    found = {}
    for field, value in ours.items():
        if value == expected[field]:
            continue
        if isinstance(value, list):
            found[field] = {
                "folio only": [v for v in value if v not in expected[field]],
                "moto only": [v for v in expected[field] if v not in value],
                "order differs": sorted(value) == sorted(expected[field]),
            }
        else:
            found[field] = {"folio": value, "moto": expected[field]}
    return found


def test_listing_grid_matches_moto(reference_pair: tuple) -> None:
    """Folio's ListObjectsV2 and ListObjects (v1) both against moto's ListObjectsV2.

    moto's ListObjects v1 is not a usable reference: with a delimiter it returns every
    common prefix regardless of marker and max-keys (and leaves them unencoded under
    encoding-type=url). AWS defines v1 and v2 to select the same entries for the same
    prefix, delimiter, marker/start-after and max-keys, so moto's v2 answer is the
    reference for both."""
    folio_client, moto_client, name = reference_pair
    mismatches = []
    for params in listing_grid():
        encoded = params.get("EncodingType") == "url"
        reference = moto_client.list_objects_v2(Bucket=name, **params)
        expected = comparable(reference, encoded=encoded, moto=True) | {"KeyCount": reference["KeyCount"]}
        ours_v2 = folio_client.list_objects_v2(Bucket=name, **params)
        ours = comparable(ours_v2, encoded=encoded) | {"KeyCount": ours_v2["KeyCount"]}
        if ours != expected:
            mismatches.append(("ListObjectsV2", params, differences(ours, expected)))
        ours = comparable(list_v1_like_v2(folio_client, {"Bucket": name, **params}), encoded=encoded)
        if ours != {k: v for k, v in expected.items() if k != "KeyCount"}:
            mismatches.append(("ListObjects", params, differences(ours, expected)))
    report = "\n".join(repr(m) for m in mismatches[:8])
    assert mismatches == [], f"{len(mismatches)} listings differ from moto, first ones:\n{report}"


def paginate_v2(client, params: dict) -> list[dict]:
    pages, token = [], None
    while True:
        page = client.list_objects_v2(**params, **({"ContinuationToken": token} if token else {}))
        pages.append(page)
        if not page["IsTruncated"]:
            return pages
        token = page["NextContinuationToken"]
        assert len(pages) < 500


def paginate_v1(client, params: dict) -> list[dict]:
    pages, marker = [], None
    while True:
        page = client.list_objects(**params, **({"Marker": marker} if marker else {}))
        pages.append(page)
        if not page["IsTruncated"]:
            return pages
        # What boto3's paginator does: NextMarker, else the last key.
        marker = page.get("NextMarker") or keys_of(page)[-1]
        assert len(pages) < 500


@pytest.mark.parametrize("max_keys", [9, 100])
def test_full_pagination_matches_moto(reference_pair: tuple, max_keys: int) -> None:
    folio_client, moto_client, name = reference_pair
    mismatches = []
    for prefix, delimiter in itertools.product(["", "a", "deep/"], [None, "/"]):
        params: dict = {"Bucket": name, "Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            params["Delimiter"] = delimiter
        # moto's v2 is the reference for both (see test_listing_grid_matches_moto).
        expected = [comparable(p, encoded=False) for p in paginate_v2(moto_client, params)]
        for api, paginate in (("v2", paginate_v2), ("v1", paginate_v1)):
            ours = [comparable(p, encoded=False) for p in paginate(folio_client, params)]
            if ours != expected:
                found = [differences(o, e) for o, e in zip(ours, expected, strict=False) if o != e]
                mismatches.append((api, params, f"{len(ours)} pages, moto {len(expected)}", found[:2]))
        if not delimiter:
            assert [k for page in expected for k in page["Keys"]] == [
                k for k in REFERENCE_KEYS if k.startswith(prefix)
            ]
    assert mismatches == [], f"{len(mismatches)} paginations differ from moto, first: {mismatches[:2]}"
