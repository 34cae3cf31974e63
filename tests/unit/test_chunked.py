"""aws-chunked decoding: the AWS documented streaming example, signed trailers, and
botocore's own unsigned-trailer encoding, fed in awkward pieces."""

from __future__ import annotations

import calendar
import hashlib
import io
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc32cChecksum, CrtCrc64NvmeChecksum

from s3proxy.api.errors import S3Error
from s3proxy.auth.checksums import Checksummer
from s3proxy.auth.chunked import ChunkedDecoder
from s3proxy.auth.sigv4 import (
    AuthResult,
    PayloadMode,
    authenticate,
    chunk_string_to_sign,
    sign,
    trailer_string_to_sign,
)

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_NOW = calendar.timegm((2013, 5, 24, 0, 0, 0, 0, 0, 0))
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_CHUNK_SIGNATURES = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
)
EMPTY = hashlib.sha256(b"").hexdigest()


def aws_example_auth() -> AuthResult:
    """The request of the AWS "sigv4-streaming" documentation example, verified by authenticate()."""
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        f"x-amz-decoded-content-length;x-amz-storage-class,Signature={SEED}",
    }
    result = authenticate("PUT", "/examplebucket/chunkObject.txt", "", headers, lambda _: AWS_SECRET, AWS_NOW)
    assert result is not None
    return result


def aws_example_body() -> bytes:
    sizes = (65536, 1024, 0)
    body = b""
    for size, signature in zip(sizes, AWS_CHUNK_SIGNATURES, strict=True):
        body += b"%x;chunk-signature=%s\r\n" % (size, signature.encode()) + b"a" * size + b"\r\n"
    return body


def decode(decoder: ChunkedDecoder, body: bytes, piece: int) -> tuple[bytes, dict[str, str]]:
    out = bytearray()
    for start in range(0, len(body), piece):
        for part in decoder.feed(body[start : start + piece]):
            out += part
    return bytes(out), decoder.finish()


def expect(code: str, auth: AuthResult, body: bytes, piece: int = 1 << 20) -> S3Error:
    with pytest.raises(S3Error) as info:
        decode(ChunkedDecoder(auth), body, piece)
    assert info.value.code == code, info.value
    return info.value


# -- the AWS documented example -----------------------------------------------------------


def test_aws_example_seed_and_chunk_signatures_match_the_documentation() -> None:
    auth = aws_example_auth()
    assert auth.seed_signature == SEED
    assert auth.payload_mode is PayloadMode.STREAMING_SIGNED
    assert auth.decoded_content_length == 66560
    previous = SEED
    for data, expected in zip((b"a" * 65536, b"a" * 1024, b""), AWS_CHUNK_SIGNATURES, strict=True):
        previous = sign(
            auth.signing_key,
            chunk_string_to_sign(auth.amz_date, auth.scope, previous, hashlib.sha256(data).hexdigest()),
        )
        assert previous == expected


@pytest.mark.parametrize("piece", [1, 3, 89, 4096, 65536, 65537, 1 << 20])
def test_aws_example_body_decodes_in_any_piece_size(piece: int) -> None:
    decoder = ChunkedDecoder(aws_example_auth())
    data, trailers = decode(decoder, aws_example_body(), piece)
    assert data == b"a" * 66560
    assert trailers == {}
    assert decoder.decoded_length == 66560


def test_aws_example_without_final_crlf_is_tolerated() -> None:
    data, _ = decode(ChunkedDecoder(aws_example_auth()), aws_example_body()[:-2], 1 << 20)
    assert len(data) == 66560


def test_tampered_chunk_data_is_rejected() -> None:
    body = bytearray(aws_example_body())
    body[1000] = ord("b")
    expect("SignatureDoesNotMatch", aws_example_auth(), bytes(body))


def test_wrong_chunk_signature_is_rejected() -> None:
    body = aws_example_body().replace(AWS_CHUNK_SIGNATURES[1].encode(), b"0" * 64)
    expect("SignatureDoesNotMatch", aws_example_auth(), body)


def test_final_chunk_signature_is_checked() -> None:
    body = aws_example_body().replace(AWS_CHUNK_SIGNATURES[2].encode(), b"f" * 64)
    expect("SignatureDoesNotMatch", aws_example_auth(), body)


def test_reordered_chunks_are_rejected() -> None:
    # Chain of signatures: a chunk signed for another position fails.
    first = b"10000;chunk-signature=%s\r\n" % AWS_CHUNK_SIGNATURES[0].encode() + b"a" * 65536 + b"\r\n"
    second = b"400;chunk-signature=%s\r\n" % AWS_CHUNK_SIGNATURES[1].encode() + b"a" * 1024 + b"\r\n"
    final = b"0;chunk-signature=%s\r\n\r\n" % AWS_CHUNK_SIGNATURES[2].encode()
    expect("SignatureDoesNotMatch", aws_example_auth(), second + first + final)


def test_unsigned_chunk_in_signed_stream_is_rejected() -> None:
    expect("SignatureDoesNotMatch", aws_example_auth(), b"400\r\n" + b"a" * 1024 + b"\r\n")


@pytest.mark.parametrize("cut", [10, 100, 65600, 66700, 66760])
def test_truncated_stream_is_incomplete_body(cut: int) -> None:
    expect("IncompleteBody", aws_example_auth(), aws_example_body()[:cut])


def test_data_after_the_end_is_rejected() -> None:
    expect("InvalidArgument", aws_example_auth(), aws_example_body() + b"0\r\n\r\n")


# -- framing with unsigned chunks ---------------------------------------------------------


def unsigned_auth(length: int | None, trailers: tuple[str, ...] = ()) -> AuthResult:
    return AuthResult(
        access_key="AK",
        payload_mode=PayloadMode.STREAMING_UNSIGNED_TRAILER,
        payload_sha256=None,
        signing_key=b"k" * 32,
        seed_signature="0" * 64,
        amz_date="20240101T000000Z",
        scope="20240101/us-east-1/s3/aws4_request",
        decoded_content_length=length,
        trailer_names=trailers,
        presigned=False,
    )


def test_more_data_than_declared_is_invalid_argument() -> None:
    expect("InvalidArgument", unsigned_auth(3), b"4\r\nabcd\r\n0\r\n\r\n")


def test_less_data_than_declared_is_incomplete_body() -> None:
    expect("IncompleteBody", unsigned_auth(5), b"4\r\nabcd\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nab\r\n0\r\n\r\n", b"2\r\nabXY0\r\n\r\n", b"-1\r\n", b"\r\n"],
    ids=["not-hex", "no-crlf-after-data", "negative", "empty-size"],
)
def test_malformed_framing_is_invalid_argument(body: bytes) -> None:
    expect("InvalidArgument", unsigned_auth(None), body)


def test_endless_chunk_header_is_refused_without_buffering_it() -> None:
    decoder = ChunkedDecoder(unsigned_auth(None))
    with pytest.raises(S3Error) as info:
        for _ in range(100):
            decoder.feed(b"1" * 1000)
    assert info.value.code == "InvalidArgument"


def test_payload_pieces_are_views_of_the_input_not_copies() -> None:
    data = b"x" * (1 << 20)
    body = b"100000\r\n" + data + b"\r\n0\r\n\r\n"
    decoder = ChunkedDecoder(unsigned_auth(len(data)))
    pieces = decoder.feed(body)
    assert len(pieces) == 1 and isinstance(pieces[0], memoryview) and pieces[0].obj is body
    decoder.finish()


def test_declared_trailer_that_never_comes_is_rejected() -> None:
    expect("InvalidRequest", unsigned_auth(2, ("x-amz-checksum-crc32",)), b"2\r\nab\r\n0\r\n\r\n")


# -- botocore's aws-chunked encoding (STREAMING-UNSIGNED-PAYLOAD-TRAILER) -----------------


@pytest.mark.parametrize(
    ("checksum_cls", "name", "algorithm"),
    [
        (Crc32Checksum, "x-amz-checksum-crc32", "CRC32"),
        (CrtCrc32cChecksum, "x-amz-checksum-crc32c", "CRC32C"),
        (CrtCrc64NvmeChecksum, "x-amz-checksum-crc64nvme", "CRC64NVME"),
    ],
)
@pytest.mark.parametrize("size", [0, 1, 1000, 3 * 65536 + 17])
def test_botocore_unsigned_trailer_encoding_decodes_byte_exact(checksum_cls, name, algorithm, size) -> None:
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    encoded = AwsChunkedWrapper(io.BytesIO(payload), checksum_cls, name, chunk_size=65536).read()
    decoder = ChunkedDecoder(unsigned_auth(size, (name,)))
    data, trailers = decode(decoder, encoded, 7919)
    assert data == payload
    checksummer = Checksummer([algorithm])
    checksummer.update(payload)
    assert trailers == {name: checksummer.digests()[algorithm]}


def test_boto3_put_object_over_https_streams_with_a_trailer_and_decodes() -> None:
    # The request boto3 really sends (captured before it leaves the process).
    s3 = boto3.client(
        "s3",
        endpoint_url="https://127.0.0.1:9000",
        region_name="us-east-1",
        aws_access_key_id="AKIAFOLIO",
        aws_secret_access_key="secret",
    )
    seen = []

    def capture(request, **_: object) -> None:
        seen.append(request)
        raise RuntimeError("captured")

    s3.meta.events.register("before-send", capture)
    payload = b"folio " * 50000
    with pytest.raises(RuntimeError):
        s3.put_object(Bucket="b", Key="k k", Body=io.BytesIO(payload))
    request = seen[0]
    split = urlsplit(request.url)
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    headers["host"] = split.netloc
    auth = authenticate("PUT", split.path, split.query, headers, lambda _: "secret", time.time())
    assert auth is not None and auth.payload_mode is PayloadMode.STREAMING_UNSIGNED_TRAILER
    body = request.body.read() if hasattr(request.body, "read") else request.body
    data, trailers = decode(ChunkedDecoder(auth), body, 65536)
    assert data == payload
    (name,) = auth.trailer_names
    algorithm = name.removeprefix("x-amz-checksum-").upper()
    checksummer = Checksummer([algorithm])
    checksummer.update(payload)
    assert trailers[name] == checksummer.digests()[algorithm]


# -- signed chunks with a signed trailer (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER) -------


class _SignedTrailerAuth(S3SigV4Auth):
    """botocore's signer, told the payload is a signed stream with a trailer (as the CRT does)."""

    def payload(self, request: AWSRequest) -> str:
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"


def signed_trailer_auth(decoded_length: int, trailer: str = "x-amz-checksum-crc32c") -> AuthResult:
    request = AWSRequest(
        method="PUT",
        url="http://127.0.0.1:9000/bucket/streamed object",
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(decoded_length),
            "x-amz-trailer": trailer,
        },
    )
    _SignedTrailerAuth(Credentials("AKIAFOLIO", "trailer-secret"), "s3", "eu-west-1").add_auth(request)
    prepared = request.prepare()
    split = urlsplit(prepared.url)
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = split.netloc
    auth = authenticate("PUT", split.path, split.query, headers, lambda _: "trailer-secret", time.time())
    assert auth is not None and auth.payload_mode is PayloadMode.STREAMING_SIGNED_TRAILER
    assert auth.trailer_names == (trailer,)
    return auth


def signed_trailer_body(
    auth: AuthResult, chunks: Iterable[bytes], trailers: dict[str, str], *, final_crlf: bool = True
) -> bytes:
    body = bytearray()
    previous = auth.seed_signature
    for chunk in [*chunks, b""]:
        previous = sign(
            auth.signing_key,
            chunk_string_to_sign(auth.amz_date, auth.scope, previous, hashlib.sha256(chunk).hexdigest()),
        )
        body += b"%x;chunk-signature=%s\r\n" % (len(chunk), previous.encode()) + chunk
        if chunk:
            body += b"\r\n"
    trailer_text = "".join(f"{name}:{value}\n" for name, value in trailers.items())
    trailer_signature = sign(
        auth.signing_key,
        trailer_string_to_sign(
            auth.amz_date, auth.scope, previous, hashlib.sha256(trailer_text.encode()).hexdigest()
        ),
    )
    for name, value in trailers.items():
        body += f"{name}:{value}\r\n".encode()
    body += f"x-amz-trailer-signature:{trailer_signature}\r\n".encode()
    if final_crlf:
        body += b"\r\n"
    return bytes(body)


def crc32c_of(data: bytes) -> str:
    checksummer = Checksummer(["CRC32C"])
    checksummer.update(data)
    return checksummer.digests()["CRC32C"]


@pytest.mark.parametrize("piece", [1, 13, 8192, 1 << 20])
@pytest.mark.parametrize("final_crlf", [True, False])
def test_signed_trailer_stream_decodes_and_returns_its_trailer(piece: int, final_crlf: bool) -> None:
    chunks = [b"q" * 8192, b"r" * 8192, b"tail"]
    payload = b"".join(chunks)
    auth = signed_trailer_auth(len(payload))
    body = signed_trailer_body(
        auth, chunks, {"x-amz-checksum-crc32c": crc32c_of(payload)}, final_crlf=final_crlf
    )
    data, trailers = decode(ChunkedDecoder(auth), body, piece)
    assert data == payload
    assert trailers == {"x-amz-checksum-crc32c": crc32c_of(payload)}


def test_tampered_trailer_value_is_rejected() -> None:
    payload = b"p" * 9000
    auth = signed_trailer_auth(len(payload))
    body = signed_trailer_body(auth, [payload], {"x-amz-checksum-crc32c": crc32c_of(payload)})
    body = body.replace(crc32c_of(payload).encode(), b"AAAAAA==")
    expect("SignatureDoesNotMatch", auth, body)


def test_missing_trailer_signature_is_rejected() -> None:
    payload = b"p" * 100
    auth = signed_trailer_auth(len(payload))
    body = signed_trailer_body(auth, [payload], {"x-amz-checksum-crc32c": crc32c_of(payload)})
    start = body.index(b"x-amz-trailer-signature")
    expect("SignatureDoesNotMatch", auth, body[:start] + b"\r\n")


def test_wrong_trailer_signature_is_rejected() -> None:
    payload = b"p" * 100
    auth = signed_trailer_auth(len(payload))
    body = signed_trailer_body(auth, [payload], {"x-amz-checksum-crc32c": crc32c_of(payload)})
    start = body.index(b"x-amz-trailer-signature:") + len(b"x-amz-trailer-signature:")
    body = body[:start] + b"0" * 64 + body[start + 64 :]
    expect("SignatureDoesNotMatch", auth, body)
