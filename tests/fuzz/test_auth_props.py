"""Properties of the S3 port's authentication parsers (s3proxy/auth): what botocore signs
verifies, bodies encoded by botocore or by the documented algorithm decode to their
payload however they are cut, and anything else is refused with our own 4xx S3Error,
never another exception."""

from __future__ import annotations

import hashlib
import io
import time
from urllib.parse import urlsplit

from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from s3proxy.api.errors import S3Error
from s3proxy.auth.checksums import Checksummer
from s3proxy.auth.chunked import ChunkedDecoder
from s3proxy.auth.presign import verify_presigned, verify_presigned_v2
from s3proxy.auth.sigv4 import AuthResult, PayloadMode, authenticate, chunk_string_to_sign, sign
from tests.fuzz.profiles import examples
from tests.fuzz.strategies import TRICKY_NUMBERS, header_text, numbers, percent_encode, query_value, text
from tests.unit.test_chunked import signed_trailer_auth, signed_trailer_body, unsigned_auth

ACCESS_KEY = "AKIAFUZZEXAMPLE00001"
SECRET = "fuzz-secret-key/0000000000000000000000000"
HOST = "127.0.0.1:9000"
QUERY_NAMES = (
    "uploads", "uploadId", "partNumber", "versionId", "versioning", "acl", "cors", "delete", "tagging",
    "list-type", "max-keys", "prefix", "delimiter", "continuation-token", "encoding-type",
    "response-content-type", "response-content-disposition", "x-id", "max-parts",
)  # fmt: skip


def lookup(access_key: str) -> str | None:
    return SECRET if access_key == ACCESS_KEY else None


def assert_4xx(error: S3Error) -> None:
    assert 400 <= error.status < 500, f"{error.code} answers {error.status}"


def headers_of(request: AWSRequest) -> dict[str, str]:
    """The headers as our listener hands them to authenticate(): lowercase, host included."""
    headers = {k.lower(): (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    headers["host"] = HOST
    return headers


keys = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)
query_pairs = st.lists(
    st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), text.map(percent_encode)), query_value), max_size=5
).filter(lambda pairs: all(name and not name.startswith(("X-Amz-", "AWSAccessKeyId", "Signature")) for name, _ in pairs))


def url_of(key: str, pairs: list[tuple[str, str]]) -> tuple[str, str, str]:
    path = "/fuzz-bucket/" + percent_encode(key).replace("%2F", "/")
    query = "&".join(f"{name}={value}" for name, value in pairs)
    return f"http://{HOST}{path}" + (f"?{query}" if query else ""), path, query


# -- header SigV4 ------------------------------------------------------------------------


@settings(max_examples=examples(150))
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
    key=keys,
    pairs=query_pairs,
    meta=st.dictionaries(st.from_regex(r"x-amz-meta-[a-z0-9]{1,8}", fullmatch=True), st.from_regex(r"[ -~]{0,20}", fullmatch=True), max_size=3),
    body=st.binary(max_size=200),
)
def test_what_botocore_signs_in_a_header_verifies(method, key, pairs, meta, body) -> None:
    url, path, query = url_of(key, pairs)
    request = AWSRequest(method=method, url=url, data=body, headers=meta)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1").add_auth(request)
    result = authenticate(method, path, query, headers_of(request), lookup, time.time())
    assert isinstance(result, AuthResult)
    assert result.access_key == ACCESS_KEY
    assert result.payload_mode is PayloadMode.SIGNED
    assert result.payload_sha256 == hashlib.sha256(body).hexdigest()


@settings(max_examples=examples(100))
# At least a minute: a URL valid for one second can expire between signing and checking.
@given(key=keys, pairs=query_pairs, expires=st.integers(min_value=60, max_value=604800))
def test_what_botocore_presigns_with_sigv4_verifies(key, pairs, expires) -> None:
    url, _, _ = url_of(key, pairs)
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1", expires=expires).add_auth(request)
    split = urlsplit(request.url)
    result = authenticate("GET", split.path, split.query, {"host": HOST}, lookup, time.time())
    assert isinstance(result, AuthResult) and result.presigned and result.access_key == ACCESS_KEY


@settings(max_examples=examples(100))
@given(key=keys, expires=st.integers(min_value=60, max_value=604800))
def test_what_botocore_presigns_with_sigv2_verifies(key, expires) -> None:
    url, _, _ = url_of(key, [])
    request = AWSRequest(method="GET", url=url)
    HmacV1QueryAuth(Credentials(ACCESS_KEY, SECRET), expires=expires).add_auth(request)
    split = urlsplit(request.url)
    result = authenticate("GET", split.path, split.query, {"host": HOST}, lookup, time.time())
    assert isinstance(result, AuthResult) and result.presigned and result.access_key == ACCESS_KEY


def _authorization(draw: st.DrawFn) -> str:
    credential = draw(
        st.one_of(
            st.builds(
                lambda ak, date, region, service, term: f"{ak}/{date}/{region}/{service}/{term}",
                st.sampled_from([ACCESS_KEY, "UNKNOWNKEY", ""]),
                st.one_of(st.just(time.strftime("%Y%m%d", time.gmtime())), numbers),
                st.sampled_from(["us-east-1", "", "x"]),
                st.sampled_from(["s3", "iam", ""]),
                st.sampled_from(["aws4_request", "aws5_request", ""]),
            ),
            header_text,
        )
    )
    signed = draw(st.one_of(st.just("host;x-amz-content-sha256;x-amz-date"), st.just("x-amz-date"), header_text))
    signature = draw(st.one_of(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), header_text))
    separator = draw(st.sampled_from([",", ", ", ",,", " ", ";"]))
    head = draw(st.sampled_from(["AWS4-HMAC-SHA256 ", "AWS ", "Bearer ", "AWS4-HMAC-SHA256", ""]))
    return f"{head}Credential={credential}{separator}SignedHeaders={signed}{separator}Signature={signature}"


@st.composite
def hostile_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = {"host": HOST}
    if draw(st.booleans()):
        headers["authorization"] = draw(header_text) if draw(st.booleans()) else _authorization(draw)
    names = ("x-amz-date", "date", "x-amz-content-sha256", "x-amz-decoded-content-length", "x-amz-trailer", "content-encoding")
    for name in names:
        if draw(st.booleans()):
            headers[name] = draw(
                st.one_of(
                    header_text,
                    st.sampled_from(
                        [
                            time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                            "20130524T000000Z",
                            "99999999T999999Z",
                            "UNSIGNED-PAYLOAD",
                            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                            "Thu, 01 Jan 1970 00:00:00 GMT",
                            "Mon, 99 Foo 2024 99:99:99 GMT",
                        ]
                    ),
                    numbers.filter(lambda v: "\x00" not in v),
                )
            )
    return headers


def _complete_queries() -> dict[str, dict[str, str]]:
    """Presigned queries with every parameter present and plausible, to be broken one or
    two values at a time (so the checks past the first ones are reached too)."""
    today = time.strftime("%Y%m%d", time.gmtime())
    return {
        "v4": {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": percent_encode(f"{ACCESS_KEY}/{today}/us-east-1/s3/aws4_request"),
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            "X-Amz-Expires": "300",
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": "0" * 64,
        },
        "v2": {"AWSAccessKeyId": ACCESS_KEY, "Expires": str(int(time.time()) + 300), "Signature": "c2lnbmF0dXJl"},
    }


@st.composite
def hostile_queries(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["v4", "v2", "loose"]))
    if kind == "loose":
        names = draw(st.lists(st.sampled_from([*_complete_queries()["v4"], *_complete_queries()["v2"], "versionId"]), max_size=9))
        params = {name: draw(query_value) for name in names}
    else:
        params = _complete_queries()[kind]
        for name in draw(st.lists(st.sampled_from(sorted(params)), min_size=1, max_size=2, unique=True)):
            if draw(st.integers(0, 6)) == 0:
                del params[name]
            else:
                params[name] = draw(st.one_of(query_value, st.sampled_from(TRICKY_NUMBERS).map(percent_encode)))
    parts = [f"{name}={value}" if draw(st.integers(0, 9)) else name for name, value in params.items()]
    return "&".join(draw(st.permutations(parts)))


@settings(max_examples=examples(300))
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "BREW"]),
    raw_path=st.one_of(st.just("/b/k"), text.map(lambda t: "/" + percent_encode(t))),
    query=st.one_of(hostile_queries(), query_value),
    headers=hostile_headers(),
)
def test_any_authentication_input_is_verified_or_refused_with_a_4xx(method, raw_path, query, headers) -> None:
    try:
        result = authenticate(method, raw_path, query, headers, lookup, time.time(), virtual_host_bucket=None)
    except S3Error as error:
        assert_4xx(error)
        return
    assert result is None or isinstance(result, AuthResult)


@settings(max_examples=examples(200))
@given(query=hostile_queries(), method=st.sampled_from(["GET", "PUT"]))
def test_presigned_parsers_refuse_junk_with_a_4xx(query, method) -> None:
    for verify in (verify_presigned, verify_presigned_v2):
        try:
            verify(method, "/b/k", query, {"host": HOST}, lookup, time.time())
        except S3Error as error:
            assert_4xx(error)


# -- aws-chunked -----------------------------------------------------------------------


def decode_in_pieces(auth: AuthResult, body: bytes, cuts: list[int]) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder(auth)
    out = bytearray()
    previous = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        for part in decoder.feed(body[previous:cut]):
            out += part
        previous = cut
    return bytes(out), decoder.finish()


def crc32_of(payload: bytes) -> str:
    checksummer = Checksummer(["CRC32"])
    checksummer.update(payload)
    return checksummer.digests()["CRC32"]


payloads = st.binary(max_size=3000)


@settings(max_examples=examples(100))
@given(payload=payloads, chunk_size=st.integers(min_value=1, max_value=1024), data=st.data())
def test_botocore_aws_chunked_bodies_decode_however_they_are_cut(payload, chunk_size, data) -> None:
    name = "x-amz-checksum-crc32"
    body = AwsChunkedWrapper(io.BytesIO(payload), Crc32Checksum, name, chunk_size=chunk_size).read()
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=20))
    decoded, trailers = decode_in_pieces(unsigned_auth(len(payload), (name,)), body, cuts)
    assert decoded == payload
    assert trailers == {name: crc32_of(payload)}


@settings(max_examples=examples(60))
@given(payload=st.binary(max_size=120), chunk_size=st.integers(min_value=1, max_value=64))
def test_signed_aws_chunked_bodies_decode_when_split_at_every_byte_boundary(payload, chunk_size) -> None:
    auth = signed_trailer_auth(len(payload))
    chunks = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]
    body = signed_trailer_body(auth, chunks, {"x-amz-checksum-crc32c": "AAAAAA=="})
    for cut in range(len(body) + 1):
        decoded, trailers = decode_in_pieces(auth, body, [cut])
        assert decoded == payload and trailers == {"x-amz-checksum-crc32c": "AAAAAA=="}
    decoded, _ = decode_in_pieces(auth, body, list(range(len(body))))  # one byte at a time
    assert decoded == payload


def signed_stream_body(auth: AuthResult, chunks: list[bytes]) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD as the AWS documentation builds it."""
    body = bytearray()
    previous = auth.seed_signature
    for chunk in [*chunks, b""]:
        previous = sign(
            auth.signing_key,
            chunk_string_to_sign(auth.amz_date, auth.scope, previous, hashlib.sha256(chunk).hexdigest()),
        )
        body += b"%x;chunk-signature=%s\r\n" % (len(chunk), previous.encode()) + chunk + b"\r\n"
    return bytes(body)


def signed_stream_auth(length: int) -> AuthResult:
    return AuthResult(
        access_key=ACCESS_KEY,
        payload_mode=PayloadMode.STREAMING_SIGNED,
        payload_sha256=None,
        signing_key=b"s" * 32,
        seed_signature="1" * 64,
        amz_date="20240101T000000Z",
        scope="20240101/us-east-1/s3/aws4_request",
        decoded_content_length=length,
        trailer_names=(),
        presigned=False,
    )


@settings(max_examples=examples(150))
@given(
    payload=st.binary(min_size=1, max_size=400),
    chunk_size=st.integers(min_value=1, max_value=128),
    mutation=st.tuples(st.integers(min_value=0), st.sampled_from(["flip", "drop", "insert", "truncate"]), st.binary(min_size=1, max_size=3)),
    data=st.data(),
)
def test_mutated_signed_chunked_bodies_are_refused_with_a_4xx(payload, chunk_size, mutation, data) -> None:
    auth = signed_stream_auth(len(payload))
    chunks = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)]
    body = bytearray(signed_stream_body(auth, chunks))
    position, kind, extra = mutation
    position %= len(body)
    if kind == "flip":
        body[position] ^= extra[0] or 1
    elif kind == "drop":
        del body[position]
    elif kind == "insert":
        body[position:position] = extra
    else:
        del body[position:]
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=6))
    try:
        decoded, _ = decode_in_pieces(auth, bytes(body), cuts)
    except S3Error as error:
        assert_4xx(error)
        return
    # Only a change the framing tolerates (a bare LF for a CRLF, a lost final CRLF, a
    # changed extension) may decode, and then to the very payload that was signed.
    assert decoded == payload


@settings(max_examples=examples(300))
@given(
    mode=st.sampled_from([PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_UNSIGNED_TRAILER, PayloadMode.STREAMING_SIGNED_TRAILER]),
    declared=st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
    trailers=st.lists(st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-foo"]), max_size=2),
    pieces=st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"0\r\n", b"\r\n", b"ffffffffffffffff\r\n", b"1;chunk-signature=" + b"0" * 64 + b"\r\n", b"x-amz-checksum-crc32:AAAAAA==\r\n", b"0;chunk-signature=\r\n\r\n", b"\n", b"10000000000000000\r\n"]),
        ),
        max_size=12,
    ),
)
def test_arbitrary_aws_chunked_bytes_are_refused_with_a_4xx(mode, declared, trailers, pieces) -> None:
    auth = AuthResult(
        access_key=ACCESS_KEY,
        payload_mode=mode,
        payload_sha256=None,
        signing_key=b"k" * 32,
        seed_signature="0" * 64,
        amz_date="20240101T000000Z",
        scope="20240101/us-east-1/s3/aws4_request",
        decoded_content_length=declared,
        trailer_names=tuple(trailers),
        presigned=False,
    )
    decoder = ChunkedDecoder(auth)
    try:
        for piece in pieces:
            decoder.feed(piece)
        decoder.finish()
    except S3Error as error:
        assert_4xx(error)
