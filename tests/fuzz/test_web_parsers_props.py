"""Properties of the web listener's parsers: image-transform parameters and signed URLs
(imgtransform/params.py, core/urlsign.py), document options and templates
(docgen/options.py, docgen/templates.py), JSON bodies, multipart forms
(restapi/forms.py), file, version and share ids, webhook inputs. A valid input parses
to what a reference says; anything else is our own 4xx (ApiError, InvalidParameter,
TemplateProblem), never another exception."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, unquote

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from urllib3.filepost import encode_multipart_formdata

from core import urlsign
from core.jsonapi import ApiError
from docgen import options as opts
from docgen.templates import TemplateJob, TemplateProblem, evaluate
from imgtransform.params import FITS, FORMATS, GRAVITIES, ROTATIONS, InvalidParameter, Transform, parse_query
from restapi import dashboard, files, forms, ids, versions, webhooks
from tests.fuzz.profiles import examples
from tests.fuzz.strategies import json_values, numbers, text
from tests.fuzz.web_strategies import document_bodies, templates

MAX_SIDE = 4000


def assert_4xx(error: ApiError) -> None:
    assert 400 <= error.status < 500, f"{error.code} answers {error.status}"


def refused_or(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ApiError as error:
        assert_4xx(error)
        return None


# -- image transforms and signed URLs -------------------------------------------------------

transforms = st.builds(
    Transform,
    w=st.one_of(st.none(), st.integers(1, MAX_SIDE)),
    h=st.one_of(st.none(), st.integers(1, MAX_SIDE)),
    fit=st.sampled_from(FITS),
    gravity=st.sampled_from(GRAVITIES),
    format=st.one_of(st.none(), st.sampled_from(sorted(set(FORMATS.values())))),
    q=st.one_of(st.none(), st.integers(1, 100)),
    dpr=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    blur=st.sampled_from([0.0, 0.5, 10.0, 100.0]),
    sharpen=st.sampled_from([0.0, 1.25, 10.0]),
    rotate=st.sampled_from(ROTATIONS),
)


@settings(max_examples=examples(200))
@given(transforms)
def test_a_transform_parses_back_from_its_canonical_query(transform) -> None:
    parsed, signature = parse_query(parse_qsl(transform.canonical()), MAX_SIDE)
    assert parsed == transform and signature == {}


PARAM_NAMES = ("w", "h", "fit", "gravity", "format", "q", "dpr", "blur", "sharpen", "rotate", "expires", "key_id", "sig")


@settings(max_examples=examples(400))
@given(st.lists(st.tuples(st.one_of(st.sampled_from(PARAM_NAMES), text), st.one_of(numbers, text)), max_size=6))
def test_any_image_query_parses_or_is_an_invalid_parameter(items) -> None:
    try:
        transform, signature = parse_query(items, MAX_SIDE)
    except InvalidParameter as error:
        assert error.message
        return
    for name, raw in items:
        if name in ("w", "h", "q"):
            # The reference: plain ASCII digits, as int() reads them.
            assert raw.isascii() and raw.isdigit() and getattr(transform, name) == int(raw)
    assert set(signature) <= {"expires", "key_id", "sig"}


@settings(max_examples=examples(200))
@given(
    secret=st.text(min_size=1, max_size=40),
    path=text,
    params=st.dictionaries(st.sampled_from(PARAM_NAMES[:10]), text, max_size=4),
    expires=st.integers(0, 2**40),
    tamper=st.one_of(st.none(), st.sampled_from(PARAM_NAMES[:10])),
)
def test_signed_image_urls_verify_and_any_change_breaks_them(secret, path, params, expires, tamper) -> None:
    query = urlsign.signed_query(secret, "AK", path, params, expires)
    received = {unquote(k): unquote(v) for k, v in (pair.split("=", 1) for pair in query.split("&"))}
    assert urlsign.signature_matches(secret, path, received)
    if tamper is not None:
        received[tamper] = received.get(tamper, "") + "x"
        assert not urlsign.signature_matches(secret, path, received)


@settings(max_examples=examples(200))
@given(secret=st.text(max_size=20), path=text, params=st.dictionaries(text, text, max_size=4))
def test_signature_checks_of_junk_answer_false(secret, path, params) -> None:
    assert urlsign.signature_matches(secret, path, params) in (True, False)


# -- document options and templates -------------------------------------------------------

@settings(max_examples=examples(400))
@given(document_bodies)
def test_document_options_parse_or_are_a_400_naming_the_field(body) -> None:
    for parse in (opts.pdf_options, opts.image_options, opts.chromium_options, opts.timeout_ms, opts.delay_ms):
        try:
            parse(body)
        except ApiError as error:
            assert error.status == 400 and error.details.get("field"), error


@settings(max_examples=examples(200))
@given(
    ranges=st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 10**6)), min_size=1, max_size=5),
    spaces=st.sampled_from(["", " ", "  "]),
)
def test_page_ranges_parse_as_written(ranges, spaces) -> None:
    text_value = ",".join(f"{spaces}{a}{spaces}-{spaces}{a + b}{spaces}" for a, b in ranges)
    assert opts.parse_page_ranges(text_value) == [(a, a + b) for a, b in ranges]


@settings(max_examples=examples(300))
@given(st.one_of(numbers, text, st.floats(allow_nan=True), st.integers(), st.booleans(), st.none()))
def test_css_lengths_and_page_ranges_parse_or_are_a_400(value) -> None:
    length = refused_or(opts.css_length, "width", value)
    assert length is None or length[-2:] in ("px", "in", "cm", "mm", "pt")
    refused_or(opts.parse_page_ranges, value)
    refused_or(opts.base64_text, "html", value)


template_data = st.one_of(
    st.fixed_dictionaries(
        {"name": st.one_of(text, numbers), "n": st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=True), text)},
        optional={"items": st.lists(text, max_size=4), "obj": st.dictionaries(text, text, max_size=3)},
    ),
    json_values(6),
)


@settings(max_examples=examples(300))
@given(source=templates(), data=template_data)
def test_templates_render_or_are_a_template_problem(source, data) -> None:
    try:
        html = evaluate(TemplateJob(source, data))
    except TemplateProblem as problem:
        assert str(problem)
        return
    assert isinstance(html, str)


@settings(max_examples=examples(200))
@given(source=st.one_of(templates(), text))
def test_saved_templates_are_checked_or_a_template_problem(source) -> None:
    try:
        evaluate(TemplateJob(source, parse_only=True))
    except TemplateProblem as problem:
        assert str(problem)


# -- JSON bodies and ids ------------------------------------------------------------------


def request_with(body: bytes, headers: dict[str, str] | None = None) -> Request:
    sent = [False]

    async def receive() -> dict[str, Any]:
        if sent[0]:
            return {"type": "http.disconnect"}
        sent[0] = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_headers, "query_string": b""}
    return Request(scope, receive)


raw_json = st.one_of(
    json_values(30).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from([b"NaN", b"1e99999", b'{"a": Infinity}', b"\xef\xbb\xbf{}", b'"\\ud800"', b"{" * 70000]),
)


@settings(max_examples=examples(300))
@given(raw_json)
def test_dashboard_json_bodies_are_objects_or_a_4xx(raw) -> None:
    body = refused_or(lambda: asyncio.run(dashboard.json_body(request_with(raw))))
    assert body is None or isinstance(body, dict)


@settings(max_examples=examples(300))
@given(json_values(12))
def test_webhook_inputs_are_accepted_or_a_400(value) -> None:
    body = value if isinstance(value, dict) else {"events": value, "url": value}
    for required in (True, False):
        events = refused_or(webhooks._events, body, required=required)
        assert events is None or all(isinstance(e, str) for e in events)
        url = refused_or(webhooks._url, body, required=required)
        assert url is None or isinstance(url, str)


@settings(max_examples=examples(300))
@given(st.one_of(text, st.builds(lambda t: "f_" + t, text), st.builds(lambda t: "v_" + t, text)))
def test_file_version_and_cursor_ids_parse_or_are_a_4xx(value) -> None:
    refused_or(ids.parse_file_id, value)
    refused_or(versions.parse_version_id, value)
    refused_or(files._cursor_after, value)


@settings(max_examples=examples(100))
@given(bucket=st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True), key=st.text(min_size=1, max_size=40))
def test_file_ids_round_trip(bucket, key) -> None:
    assert ids.parse_file_id(ids.file_id(bucket, key)) == (bucket, key)


# -- multipart forms -----------------------------------------------------------------------


async def _pieces(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    previous = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        yield body[previous:cut]
        previous = cut


def parse_form(body: bytes, boundary: bytes, cuts: list[int]) -> tuple[forms.ParsedForm, bytes]:
    received = bytearray()

    async def write(piece: bytes) -> None:
        received.extend(piece)

    form = asyncio.run(forms.stream_form(_pieces(body, cuts), boundary, write))
    return form, bytes(received)


boundaries = st.from_regex(r"[0-9A-Za-z'()+_,./:=?-]{1,70}", fullmatch=True)


@settings(max_examples=examples(200))
@given(
    fields=st.dictionaries(st.sampled_from(["key", "bucket", "note"]), st.text(max_size=50), max_size=3),
    content=st.binary(max_size=2000),
    filename=st.text(st.characters(codec="ascii", exclude_characters='"\\\r\n'), min_size=1, max_size=20),
    boundary=boundaries.filter(lambda b: not b.endswith(" ")),
    data=st.data(),
)
def test_forms_from_a_reference_encoder_parse_however_they_are_cut(fields, content, filename, boundary, data) -> None:
    body, content_type = encode_multipart_formdata(
        [*fields.items(), ("file", (filename, content, "application/octet-stream"))], boundary=boundary
    )
    assume_unique = all(boundary.encode() not in v.encode() for v in fields.values()) and boundary.encode() not in content
    if not assume_unique:
        return
    assert forms.boundary_of(content_type) == boundary.encode()
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    form, received = parse_form(body, boundary.encode(), cuts)
    assert form.complete and form.saw_file
    assert form.fields == fields and received == content and form.filename == filename


@settings(max_examples=examples(300))
@given(
    content_type=st.one_of(
        text,
        st.builds(lambda b: f"multipart/form-data; boundary={b}", st.one_of(text, st.integers(0, 400).map(lambda n: "b" * n))),
        st.builds(lambda b: f'multipart/form-data; boundary="{b}"', text),
    ),
    body=st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.sampled_from([b"--b\r\n", b"--b--\r\n", b'Content-Disposition: form-data; name="file"\r\n\r\n', b"\r\n", b"--" + b"b" * 300 + b"\r\n"]),
        ),
        max_size=8,
    ),
)
def test_any_form_parses_or_is_a_400(content_type, body) -> None:
    try:
        boundary = forms.boundary_of(content_type.encode("utf-8", "surrogatepass").decode("latin-1"))
        parse_form(b"".join(body), boundary, [])
    except ApiError as error:
        assert_4xx(error)


@settings(max_examples=examples(50))
@given(body=st.dictionaries(text, json_values(6), max_size=4))
def test_dashboard_string_fields_are_strings_or_a_400(body) -> None:
    for name in ("email", "password", "name"):
        refused_or(dashboard._string, body, name)
        refused_or(dashboard._string, body, name, required=False, max_length=100)
