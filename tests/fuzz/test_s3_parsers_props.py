"""Properties of the S3 API's request parsers (s3proxy/api, core/byteranges): XML
bodies (CompleteMultipartUpload, DeleteObjects, CORS, ACL, versioning; XXE and entity
expansion included), the routing table and the operations' query parameters, Range and
conditional headers, response-* overrides and x-amz-copy-source. A valid input parses
to what a reference says; anything else is our own 4xx S3Error, never another exception."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import time
from email.utils import formatdate
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.byteranges import UnsatisfiableRange, parse_byte_range
from s3proxy.access import grants
from s3proxy.api import acl, copy, cors, delete, listing, multipart, objects, versioning
from s3proxy.api.context import RequestContext
from s3proxy.api.errors import S3Error
from s3proxy.api.router import SUBRESOURCES, TABLE, Target, resolve
from s3proxy.api.xml import escape
from s3proxy.store.errors import StoreError
from tests.fuzz.profiles import examples
from tests.fuzz.strategies import header_text, numbers, text, wire_header

OWNER_ID = "f" * 64


class _Accounts:
    """The one account ACL grants may name: canonical id OWNER_ID, account id "acct"."""

    def by_canonical_id(self, canonical_id: str) -> Any:
        return SimpleNamespace(id="acct") if canonical_id == OWNER_ID else None

    def by_email(self, email: str) -> Any:
        return None


ACCOUNTS = _Accounts()


def context(
    query: dict[str, str] | None = None, headers: dict[str, str] | None = None, body: bytes = b""
) -> RequestContext:
    """A request as the listener hands it to a handler, with its body ready to receive."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    all_headers = {"content-length": str(len(body)), **(headers or {})}
    ctx = RequestContext(
        scope={"type": "http"},
        receive=receive,
        method="POST",
        raw_path="/fuzz/key",
        bucket_name="fuzz",
        key="key",
        query=dict(query or {}),
        query_string="",
        headers=all_headers,
        request_id="FUZZ",
    )
    ctx.account = SimpleNamespace(id="acct", canonical_id=OWNER_ID, display_name="fuzz", plan="default")
    return ctx


def assert_4xx(error: S3Error) -> None:
    assert 400 <= error.status < 500 or error.code == "NotImplemented", f"{error.code} answers {error.status}"


def refused_or(call, *args, **kwargs):
    """The call's result, or None when it raised a 4xx S3Error (the only refusal allowed)."""
    try:
        return call(*args, **kwargs)
    except S3Error as error:
        assert_4xx(error)
        return None


# -- XML bodies -------------------------------------------------------------------------

XXE = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>',
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
    b"<CORSConfiguration><CORSRule><AllowedOrigin>&f;</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
    b'<!DOCTYPE x SYSTEM "http://169.254.169.254/latest/meta-data/"><VersioningConfiguration/>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % e SYSTEM "http://127.0.0.1:1/x.dtd"> %e;]><CompleteMultipartUpload/>',
    b'<?xml version="1.0" encoding="UTF-7"?><Delete/>',
    b'<?xml version="1.0" encoding="bogus"?><Delete/>',
    b"<Delete xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='/etc/passwd' parse='text'/></Delete>",
    b"\xef\xbb\xbf<Delete><Object><Key>k</Key></Object></Delete>",
    b"<" * 5000,
    b"<a>" * 300 + b"</a>" * 300,
)  # fmt: skip


def element_text() -> st.SearchStrategy[str]:
    return st.one_of(numbers, text).map(escape)


@st.composite
def xml_documents(draw: st.DrawFn, root: str, children: dict[str, tuple[str, ...]]) -> bytes:
    """A document shaped like `root` with generated child elements and values (some of
    them out of order, repeated, missing or misnamed), or junk, or an XXE attempt."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(XXE))
    if kind == 1:
        return draw(st.binary(max_size=200))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from([*children, "Bogus"]))
        inner = ""
        for field_name in draw(st.lists(st.sampled_from([*children.get(name, ()), "Junk"]), max_size=5)):
            inner += f"<{field_name}>{draw(element_text())}</{field_name}>"
        parts.append(f"<{name}>{inner}</{name}>")
    namespace = draw(
        st.sampled_from(["", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', ' xmlns="urn:x"'])
    )
    top = draw(st.sampled_from([root, root.lower(), "Other"]))
    doc = f"<{top}{namespace}>{''.join(parts)}</{top}>"
    if draw(st.booleans()):
        doc = '<?xml version="1.0" encoding="UTF-8"?>' + doc
    return doc.encode("utf-8", "surrogatepass")


class _Store:
    """What the XML handlers call on the store once the body parsed: recorded, nothing stored."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    async def set_versioning(self, *args: Any) -> None:
        self.calls.append(("set_versioning", args))

    async def update_settings(self, *args: Any, **changes: Any) -> None:
        self.calls.append(("update_settings", (*args, changes)))

    async def delete_object(
        self, bucket: Any, key: str, version_id: str | None, condition: Any = None
    ) -> Any:
        self.calls.append(("delete_object", (key, version_id)))
        if version_id is not None and not version_id.isalnum():
            raise StoreError("NoSuchVersion")
        return SimpleNamespace(delete_marker=False, version_id=version_id)


def services() -> SimpleNamespace:
    from s3proxy.api.body import IdleWatchdog

    bucket = SimpleNamespace(
        name="fuzz",
        account_id="acct",
        settings=SimpleNamespace(cors=(), policy=None, acl=None),
        versioning="Enabled",
    )
    return SimpleNamespace(
        authorized_bucket=lambda _ctx: bucket,
        allows=lambda *_args, **_kwargs: True,
        store=_Store(),
        config=SimpleNamespace(limits=SimpleNamespace(max_xml_body=1024 * 1024, max_delete_objects=1000)),
        watchdog=IdleWatchdog(5.0),
    )


def run_handler(handler, body: bytes):
    """Run an XML handler on `body` (with a correct Content-MD5, as DeleteObjects needs)."""
    svc = services()
    ctx = context(headers={"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()}, body=body)
    try:
        return asyncio.run(handler(ctx, svc)), svc
    except S3Error as error:
        assert_4xx(error)
        return None, svc


@settings(max_examples=examples(200))
@given(
    xml_documents(
        "CompleteMultipartUpload", {"Part": ("PartNumber", "ETag", "ChecksumCRC32", "ChecksumSHA256")}
    )
)
def test_complete_multipart_upload_bodies_parse_or_are_refused(body) -> None:
    parts = refused_or(multipart._parse_complete, body)
    for part in parts or ():
        assert isinstance(part.part_number, int) and part.part_number >= 0


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(st.integers(1, 10000), st.from_regex(r'"?[0-9a-f]{32}"?', fullmatch=True)),
        min_size=1,
        max_size=20,
    )
)
def test_complete_multipart_upload_parses_what_boto3_would_send(parts) -> None:
    body = (
        "<CompleteMultipartUpload>"
        + "".join(
            f"<Part><ETag>{escape(etag)}</ETag><PartNumber>{number}</PartNumber></Part>"
            for number, etag in parts
        )
        + "</CompleteMultipartUpload>"
    )
    parsed = multipart._parse_complete(body.encode())
    assert [(p.part_number, p.etag) for p in parsed] == parts


@settings(max_examples=examples(200))
@given(
    xml_documents(
        "CORSConfiguration",
        {
            "CORSRule": (
                "AllowedOrigin",
                "AllowedMethod",
                "AllowedHeader",
                "ExposeHeader",
                "MaxAgeSeconds",
                "ID",
            )
        },
    )
)
def test_cors_bodies_parse_or_are_refused(body) -> None:
    rules = refused_or(cors._parse_rules, body)
    for rule in rules or ():
        assert rule.max_age_seconds is None or rule.max_age_seconds >= 0
        assert rule.allowed_methods and rule.allowed_origins


@settings(max_examples=examples(150))
@given(
    xml_documents("AccessControlPolicy", {"AccessControlList": ("Grant",), "Owner": ("ID", "DisplayName")})
)
def test_acl_bodies_parse_or_are_refused(body) -> None:
    parsed = refused_or(acl._acl_from_document, body, ACCOUNTS, "acct")
    if parsed is not None:
        assert parsed.owner == "acct"
        assert all(g.permission in grants.PERMISSIONS for g in parsed.grants)
        assert all(g.value == "acct" if g.kind == "user" else g.value in grants.GROUPS for g in parsed.grants)


@settings(max_examples=examples(150))
@given(xml_documents("VersioningConfiguration", {"Status": (), "MfaDelete": ()}))
def test_versioning_bodies_parse_or_are_refused(body) -> None:
    _, svc = run_handler(versioning.put_bucket_versioning, body)
    for _, args in svc.store.calls:
        assert args[1] in ("Enabled", "Suspended")


@settings(max_examples=examples(150))
@given(xml_documents("Delete", {"Object": ("Key", "VersionId"), "Quiet": ()}))
def test_delete_objects_bodies_parse_or_are_refused(body) -> None:
    run_handler(delete.delete_objects, body)


@settings(max_examples=examples(100))
@given(st.sampled_from(XXE), st.sampled_from(["complete", "cors", "acl", "versioning", "delete"]))
def test_entities_and_dtds_are_malformed_xml_and_never_expanded(body, target) -> None:
    started = time.monotonic()
    calls = {
        "complete": lambda: multipart._parse_complete(body),
        "cors": lambda: cors._parse_rules(body),
        "acl": lambda: acl._acl_from_document(body, ACCOUNTS, "acct"),
        "versioning": lambda: run_handler(versioning.put_bucket_versioning, body),
        "delete": lambda: run_handler(delete.delete_objects, body),
    }
    result = refused_or(calls[target])
    if isinstance(result, tuple):  # a handler: nothing reached the store from an entity
        for _, args in result[1].store.calls:
            assert "root:" not in repr(args) and "aaaaaaaaaa" * 100 not in repr(args)
    assert time.monotonic() - started < 2


# -- routing and query parameters ---------------------------------------------------------

QUERY_NAMES = sorted(
    SUBRESOURCES
    | {
        "partNumber", "uploadId", "versionId", "max-keys", "max-parts", "part-number-marker", "max-uploads",
        "list-type", "continuation-token", "encoding-type", "prefix", "delimiter", "key-marker",
        "version-id-marker", "start-after", "fetch-owner", "marker", "x-id",
    }
)  # fmt: skip
queries = st.dictionaries(st.one_of(st.sampled_from(QUERY_NAMES), text), st.one_of(numbers, text), max_size=5)


@settings(max_examples=examples(300))
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
    target=st.sampled_from(list(Target)),
    query=queries,
    headers=st.dictionaries(
        st.sampled_from(["x-amz-copy-source", "content-type", "x-amz-acl"]), header_text, max_size=2
    ),
)
def test_the_router_names_one_operation_or_none(method, target, query, headers) -> None:
    operation = resolve(method, target, query, headers)
    names = {endpoint.operation for endpoint in TABLE} | {"Unknown"}
    assert operation is None or operation in names


@settings(max_examples=examples(300))
@given(query=queries)
def test_integer_query_parameters_parse_to_what_int_says_or_are_refused(query) -> None:
    ctx = context(query=query)
    checks = [
        ("partNumber", lambda: multipart._part_number(ctx), 1, 10000),
        ("partNumber", lambda: objects._part_number(ctx), 1, 10000),
        ("max-keys", lambda: listing.max_keys_param(ctx, 1000), 0, 1000),
        ("max-parts", lambda: multipart._int_param(ctx, "max-parts", 1000, 1000), 0, 1000),
        ("part-number-marker", lambda: multipart._int_param(ctx, "part-number-marker", 0, 10000), 0, 10000),
        ("max-uploads", lambda: multipart._int_param(ctx, "max-uploads", 1000, 1000), 0, 1000),
    ]
    for name, call, low, high in checks:
        value = refused_or(call)
        raw = query.get(name)
        if value is None or raw is None:
            continue
        # The reference: a plain run of ASCII digits, read as Python reads it.
        assert raw.isascii() and raw.isdigit(), f"{name}={raw!r} was accepted"
        assert value == min(int(raw), high) and low <= value <= high


@settings(max_examples=examples(200))
@given(query=queries)
def test_listing_parameters_are_checked_or_refused(query) -> None:
    ctx = context(query=query)
    refused_or(listing.encoding_param, ctx)
    if "continuation-token" in query:
        refused_or(listing.decode_token, query["continuation-token"])
    if hasattr(ctx, "version_id"):
        version_id = refused_or(ctx.version_id)
        assert version_id is None or (version_id.isascii() and version_id.isprintable())


@settings(max_examples=examples(200))
@given(
    query=st.dictionaries(
        st.sampled_from(sorted(objects.RESPONSE_OVERRIDES)),
        st.one_of(header_text, text),
        min_size=1,
        max_size=3,
    )
)
def test_response_overrides_never_carry_control_characters(query) -> None:
    overrides = getattr(objects, "_response_overrides", None)
    if overrides is None:  # checked by the listener's safety net instead
        return
    result = refused_or(overrides, context(query=query))
    for value in (result or {}).values():
        assert not any(ord(ch) < 0x20 and ch != "\t" or ch == "\x7f" for ch in value), repr(value)


# -- headers ----------------------------------------------------------------------------


def _position(digits: str) -> int:
    # Python's int() refuses strings of more than 4,300 digits; any such number is past
    # the end of every object, which 10**100 stands for as well.
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 100 else 10**100


def reference_range(header: str, size: int) -> tuple[int, int] | None | str:
    """RFC 9110 single byte range as S3 applies it, written independently: None for the
    whole body (absent, malformed, multiple), "416", or (first, last)."""
    unit, eq, spec = header.strip().partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (part.strip() for part in spec.strip().partition("-"))
    if (
        not dash
        or not all(p == "" or (p.isascii() and p.isdigit()) for p in (first, last))
        or not (first or last)
    ):
        return None
    if not first:
        if _position(last) == 0 or size == 0:
            return "416"
        return max(0, size - _position(last)), size - 1
    start = _position(first)
    if start >= size:
        return "416"
    end = _position(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


ranges = st.one_of(
    st.builds(
        lambda unit, a, b, sp: f"{unit}={sp}{a}{sp}-{sp}{b}",
        st.sampled_from(["bytes", "Bytes", "bytes ", "items", ""]),
        st.one_of(st.integers(0, 2**70).map(str), st.just(""), numbers),
        st.one_of(st.integers(0, 2**70).map(str), st.just(""), numbers),
        st.sampled_from(["", " ", "  "]),
    ),
    header_text,
    st.just("bytes=0-1,3-4"),
)


@settings(max_examples=examples(400))
@given(header=ranges, size=st.integers(0, 10**12))
def test_range_headers_parse_as_the_reference_says(header, size) -> None:
    try:
        parsed: tuple[int, int] | None | str = parse_byte_range(header, size)
    except UnsatisfiableRange:
        parsed = "416"
    expected = reference_range(header, size)
    assert parsed == expected, f"{header!r} on {size} bytes: {parsed}, expected {expected}"


@settings(max_examples=examples(200))
@given(header=ranges, size=st.integers(0, 10**6))
def test_s3_range_and_copy_range_answer_a_range_or_a_4xx(header, size) -> None:
    result = refused_or(objects.parse_range, header, size)
    if isinstance(result, tuple):
        assert 0 <= result[0] <= result[1] < size
    copied = refused_or(multipart._copy_range, header, size)
    if copied is not None:
        assert 0 <= copied[0] <= copied[1] < size


dates = st.one_of(
    st.integers(-(2**40), 2**40).map(
        lambda t: formatdate(t, usegmt=True) if -62135596800 < t < 253402300799 else str(t)
    ),
    header_text,
    st.sampled_from(
        ["Mon, 99 Foo 2024 99:99:99 GMT", "Thu, 01 Jan 99999999999999999999 00:00:00 GMT", "0", ""]
    ),
)
etags = st.one_of(st.just('"abc"'), st.just("*"), st.just('W/"abc"'), st.just('"abc", "def"'), header_text)


@settings(max_examples=examples(300))
@given(
    headers=st.fixed_dictionaries(
        {},
        optional={
            "if-match": etags,
            "if-none-match": etags,
            "if-modified-since": dates,
            "if-unmodified-since": dates,
        },
    )
)
def test_conditional_headers_answer_serve_304_or_412(headers) -> None:
    version = SimpleNamespace(last_modified=1_700_000_000.5, etag="abc")
    assert objects.check_read_conditions(headers, version) in (None, 304, 412)
    for name in ("if-modified-since", "if-unmodified-since"):
        stamp = objects.parse_http_date(headers.get(name))
        assert stamp is None or math.isfinite(stamp)
    refused_or(objects.write_conditions, headers)
    refused_or(copy.copy_conditions, {f"x-amz-copy-source-{k}": v for k, v in headers.items()})


@settings(max_examples=examples(300))
@given(
    value=st.one_of(
        header_text,
        st.builds(
            lambda b, k, v: wire_header(f"{b}/{k}" + (f"?versionId={v}" if v is not None else "")),
            text,
            text,
            st.one_of(st.none(), text),
        ),
    )
)
def test_copy_sources_parse_or_are_refused(value) -> None:
    parsed = refused_or(copy.parse_copy_source, value)
    if parsed is not None:
        bucket, key, version_id = parsed
        assert bucket and key


@settings(max_examples=examples(300))
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["x-amz-acl", "x-amz-grant-read", "x-amz-storage-class", "x-amz-metadata-directive", "content-type",
             "cache-control", "expires", "x-amz-meta-a", "x-amz-meta-" + "b" * 100, "x-amz-checksum-algorithm"]
        ),
        header_text,
        max_size=5,
    )
)  # fmt: skip
def test_object_headers_are_stored_or_refused(headers) -> None:
    refused_or(objects.object_meta_from_headers, headers)
    refused_or(acl.requested_acl, headers, ACCOUNTS, "acct", "owner", for_bucket=False)
    refused_or(copy._metadata_directive, headers)
    refused_or(copy._storage_class, headers)
