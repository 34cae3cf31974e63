"""PostObject: `POST /{bucket}` with a multipart/form-data body, the browser-based
upload of AWS ("Browser-Based Uploads Using POST").

The request carries no Authorization: the form's signed policy is its authentication,
checked (s3proxy/auth/post_policy.py) when the `file` part begins, so every text field
before it is known and no byte of the file is stored for a refused form. The file then
streams into a store writer as a PUT's body does (quota reserved as it grows, MD5/ETag
and requested checksums computed on the way, a temporary blob renamed only once the
form has ended well). Fields after the file are ignored, as AWS ignores them."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlencode, urlsplit

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from core.accounts import Account
from core.formparts import PartHeaders
from core.ratelimit import PLAN_RATE_FIELDS
from core.requestbody import BodyProblem, multipart_boundary
from core.strictparse import ascii_int, header_safe
from s3proxy.api.acl import stored_object_acl
from s3proxy.api.body import BodyReceiver
from s3proxy.api.context import RequestContext, Response
from s3proxy.api.errors import S3Error, too_many_requests
from s3proxy.api.objects import META_PREFIX, STORED_HEADERS, object_meta_from_headers, version_headers
from s3proxy.api.services import Services
from s3proxy.api.xml import document, element
from s3proxy.auth import checksums
from s3proxy.auth.post_policy import (
    PostPolicy,
    check_fields,
    check_length,
    decode_policy,
    verify_policy_signature,
)
from s3proxy.store.models import Bucket, ObjectMeta
from s3proxy.store.quota import Reservation
from s3proxy.store.writer import ObjectWriter

FILE_FIELD = "file"
# AWS: the fields before the file may not pass 20 KB (MaxPostPreDataLengthExceededError).
MAX_PRE_DATA_BYTES = 20 * 1024
# The largest object one POST may store, as a single PUT (AWS: 5 GB).
MAX_POST_OBJECT_BYTES = 5 * 1024**3
_STATUSES = {"200": 200, "201": 201, "204": 204}


def _malformed() -> S3Error:
    return S3Error(
        "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."
    )


def _boundary(content_type: str) -> bytes:
    kind, _ = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            extra={"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
        )
    try:
        return multipart_boundary(content_type)
    except BodyProblem as exc:
        raise _malformed() from exc


@dataclass
class _Upload:
    """What the form has said so far, and the file's destination once authorized."""

    fields: dict[str, str] = field(default_factory=dict)
    pre_data: int = 0
    filename: str = ""
    # "fields" until the file part begins, then "file", then "after" (ignored parts).
    phase: str = "fields"
    complete: bool = False
    pending: list[bytes] = field(default_factory=list)
    policy: PostPolicy | None = None
    writer: ObjectWriter | None = None
    checksummer: checksums.Checksummer | None = None
    checksum_request: checksums.ChecksumRequest | None = None
    reservation: Reservation | None = None
    bucket: Bucket | None = None
    key: str = ""
    meta: ObjectMeta | None = None
    content_md5: bytes | None = None


def _too_much_pre_data() -> S3Error:
    return S3Error(
        "MaxPostPreDataLengthExceededError",
        "Your POST request fields preceding the upload file were too large.",
        extra={"MaxPostPreDataLength": str(MAX_PRE_DATA_BYTES)},
    )


def _parser(boundary: bytes, upload: _Upload) -> MultipartParser:
    part: dict[str, object] = {}

    def count(nbytes: int) -> None:
        # Part headers count too: before the file towards the 20 KB, after it per part
        # (ignored parts are never stored, but their headers are held until they end).
        if upload.phase == "fields":
            upload.pre_data += nbytes
            if upload.pre_data > MAX_PRE_DATA_BYTES:
                raise _too_much_pre_data()
        else:
            part["header_bytes"] += nbytes  # type: ignore[operator]
            if part["header_bytes"] > MAX_PRE_DATA_BYTES:  # type: ignore[operator]
                raise _malformed()

    headers = PartHeaders(count)

    def on_part_begin() -> None:
        headers.begin()
        part.update(field="", data=bytearray(), header_bytes=0)

    def on_headers_finished() -> None:
        name, filename = headers.disposition()
        part["field"] = name.lower()
        if upload.phase == "fields" and part["field"] == FILE_FIELD:
            upload.phase = "file"
            upload.filename = (filename or b"").decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if upload.phase == "file" and part["field"] == FILE_FIELD:
            upload.pending.append(data[start:end])
        elif upload.phase == "fields":
            count(end - start)
            part["data"] += data[start:end]  # type: ignore[operator]

    def on_part_end() -> None:
        if upload.phase == "file" and part["field"] == FILE_FIELD:
            upload.phase = "after"
        elif upload.phase == "fields" and part["field"]:
            value = bytes(part["data"]).decode("utf-8", "replace")  # type: ignore[arg-type]
            upload.fields.setdefault(str(part["field"]), value)

    return MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": headers.on_field,
            "on_header_value": headers.on_value,
            "on_header_end": headers.on_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": lambda: setattr(upload, "complete", True),
        },
    )


async def _rate_limit(services: Services, account: Account, access_key: str) -> None:
    """The signing key's account pays for the upload as for a PUT (the same limiter key
    as the app's, so forms and PUTs share the plan's write rate), shaped the same way."""
    rate = getattr(services.config.plan(account.plan), PLAN_RATE_FIELDS["write"])
    max_wait = services.config.limits.max_rate_wait_seconds
    wait = await services.limiter.admit((access_key, "write"), rate, max_wait=max_wait)
    if wait:
        raise too_many_requests(wait)


def _meta(fields: dict[str, str]) -> ObjectMeta:
    """The object's settings from the form, read as PutObject reads the same headers.
    A form field, unlike a header, may hold a line break: refused here, or a later GET
    could not send the object's headers."""
    headers = {name: fields[name] for name in ("content-type", *STORED_HEADERS) if name in fields}
    headers.update({name: value for name, value in fields.items() if name.startswith(META_PREFIX)})
    for name, value in headers.items():
        if not header_safe(value):
            raise S3Error(
                "InvalidArgument",
                f"Form field {name} cannot contain control characters.",
                extra={"ArgumentName": name},
            )
    if "x-amz-storage-class" in fields:
        headers["x-amz-storage-class"] = fields["x-amz-storage-class"]
    return object_meta_from_headers(headers)


async def _authorize(ctx: RequestContext, services: Services, upload: _Upload, stack: ExitStack) -> None:
    """At the start of the file: the form is signed, its policy holds, and the signer may write here."""
    assert ctx.bucket_name is not None
    fields = upload.fields
    if "key" not in fields:
        raise S3Error(
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
            extra={"ArgumentName": "key", "ArgumentValue": ""},
        )
    if "policy" not in fields:
        # An unsigned form could only write to a bucket everyone may write to: Folio has none.
        raise S3Error("AccessDenied")
    holder: list[Account] = []

    def lookup_secret(access_key: str) -> str | None:
        found = services.accounts.lookup_key(access_key)
        if found is None:
            return None
        holder.append(found[0])
        return found[1]

    access_key = verify_policy_signature(fields, lookup_secret)
    policy = decode_policy(fields["policy"])
    # The conditions hold for the key as stored: ${filename} is expanded first, as AWS does.
    key = fields["key"].replace("${filename}", upload.filename)
    check_fields(policy, {**fields, "key": key}, ctx.bucket_name, time.time())
    account = holder[-1]
    ctx.account = account
    bucket = services.existing_bucket(ctx.bucket_name)
    await _rate_limit(services, account, access_key)
    # The signer needs what a PutObject of this key needs: the bucket's owner, a WRITE
    # grant, or a bucket policy allowing s3:PutObject here.
    services.authorize(ctx, bucket, "s3:PutObject", key)
    if not key:
        raise S3Error("InvalidArgument", "User key must have a length greater than 0.")
    if len(key.encode("utf-8")) > 1024:
        raise S3Error("KeyTooLongError")
    meta = _meta(fields)
    acl_headers = {"x-amz-acl": fields["acl"]} if "acl" in fields else {}
    meta = replace(meta, acl=stored_object_acl(acl_headers, services, bucket, account.id))
    redirect = _redirect_field(fields)
    if redirect is not None and not header_safe(redirect):
        # Checked now: found only when answering, the object would be stored under a 400.
        raise S3Error(
            "InvalidArgument",
            "success_action_redirect cannot contain control characters.",
            extra={"ArgumentName": "success_action_redirect"},
        )
    request = checksums.parse_checksum_request(
        {name: value for name, value in fields.items() if name.startswith("x-amz-checksum-")}, ()
    )
    upload.policy, upload.bucket, upload.key, upload.meta = policy, bucket, key, meta
    upload.checksum_request = request
    if "content-md5" in fields:
        upload.content_md5 = checksums.parse_content_md5(fields["content-md5"])
    upload.checksummer = checksums.Checksummer(request.algorithms())
    upload.reservation = stack.enter_context(services.store.reservation(bucket, key))
    upload.writer = services.store.new_writer([upload.checksummer])


async def _write_pending(upload: _Upload) -> None:
    assert upload.writer is not None and upload.policy is not None and upload.reservation is not None
    for piece in upload.pending:
        size = upload.writer.size + len(piece)
        if size > MAX_POST_OBJECT_BYTES:
            raise S3Error("EntityTooLarge", extra={"MaxSizeAllowed": str(MAX_POST_OBJECT_BYTES)})
        check_length(upload.policy, size, final=False)
        await upload.reservation.require(size)
        await upload.writer.write(piece)
    upload.pending.clear()


async def _receive_form(ctx: RequestContext, services: Services, upload: _Upload, stack: ExitStack) -> None:
    boundary = _boundary(ctx.headers.get("content-type", ""))
    raw_length = ctx.headers.get("content-length")
    declared = ascii_int(raw_length, strip=True) if raw_length is not None else None
    if raw_length is not None and declared is None:
        raise S3Error("InvalidArgument", "Content-Length must be a non-negative integer.")
    if declared is None and "chunked" not in ctx.headers.get("transfer-encoding", "").lower():
        raise S3Error("MissingContentLength")
    parser = _parser(boundary, upload)
    receiver = BodyReceiver(ctx, services.watchdog)
    received = 0
    more = True
    while more:
        message = await receiver.receive()
        data = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(data)
        if declared is not None and received > declared:
            raise S3Error("IncompleteBody", "The request body is longer than its Content-Length.")
        try:
            parser.write(data)
        except FormParserError as exc:  # any of python-multipart's errors is the client's
            raise _malformed() from exc
        if upload.phase != "fields" and upload.writer is None:
            await _authorize(ctx, services, upload, stack)
        if upload.pending:
            await _write_pending(upload)
    if declared is not None and received < declared:
        raise S3Error("IncompleteBody")
    try:
        parser.finalize()
    except FormParserError as exc:
        raise _malformed() from exc
    if not upload.complete:
        raise _malformed()
    if upload.writer is None:
        raise S3Error(
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
            extra={"ArgumentName": "file", "ArgumentValue": "0"},
        )


def _object_url(ctx: RequestContext, key: str) -> str:
    scheme = ctx.scope.get("scheme", "http")
    host = ctx.headers.get("host", "")
    path = f"/{quote(key, safe='/')}" if ctx.virtual_host else f"/{ctx.bucket_name}/{quote(key, safe='/')}"
    return f"{scheme}://{host}{path}"


def _redirect_field(fields: dict[str, str]) -> str | None:
    # `redirect` is the older name AWS still accepts.
    return fields.get("success_action_redirect") or fields.get("redirect")


def _redirect_target(url: str, bucket: str, key: str, etag: str) -> str | None:
    """success_action_redirect with bucket, key and etag appended; None for a URL AWS would not follow."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    extra = urlencode({"bucket": bucket, "key": key, "etag": f'"{etag}"'}, quote_via=quote)
    # Non-ASCII characters of the URL percent-encoded (UTF-8): a header is bytes.
    url = quote(url, safe="".join(chr(c) for c in range(0x21, 0x7F)))
    return f"{url}{'&' if parts.query else '?'}{extra}"


async def post_object(ctx: RequestContext, services: Services) -> Response:
    assert ctx.bucket_name is not None
    upload = _Upload()
    with ExitStack() as stack:
        try:
            await _receive_form(ctx, services, upload, stack)
            assert upload.writer is not None and upload.policy is not None
            await upload.writer.finish()
            check_length(upload.policy, upload.writer.size, final=True)
            computed = upload.checksummer.digests() if upload.checksummer is not None else {}
            if upload.checksum_request is not None:
                checksums.verify(upload.checksum_request.expected, computed)
            if upload.content_md5 is not None and upload.writer.md5.digest() != upload.content_md5:
                raise S3Error("BadDigest", "The Content-MD5 you specified did not match what was received.")
        except BaseException:
            # Refused or cut short: the temporary blob goes, nothing is stored.
            if upload.writer is not None:
                await upload.writer.aclose_pending()
                upload.writer.abort()
            raise
        assert upload.bucket is not None and upload.meta is not None
        meta = replace(upload.meta, checksums=computed)
        version = await services.store.put_object(
            upload.bucket, upload.key, upload.writer, meta, reservation=upload.reservation
        )
    return _answer(ctx, upload, version.etag, version_headers(upload.bucket, version))


def _answer(ctx: RequestContext, upload: _Upload, etag: str, extra_headers: dict[str, str]) -> Response:
    assert ctx.bucket_name is not None
    location = _object_url(ctx, upload.key)
    headers = {"etag": f'"{etag}"', "location": location, **extra_headers}
    redirect = _redirect_field(upload.fields)
    if redirect:
        target = _redirect_target(redirect, ctx.bucket_name, upload.key, etag)
        if target is not None:
            return Response(status=303, headers={**headers, "location": target})
    status = _STATUSES.get(upload.fields.get("success_action_status", ""), 204)
    if status != 201:
        return Response(status=status, headers=headers)
    inner = (
        element("Location", location)
        + element("Bucket", ctx.bucket_name)
        + element("Key", upload.key)
        + element("ETag", f'"{etag}"')
    )
    return Response.xml(document("PostResponse", inner, namespace=False), status=201, headers=headers)
