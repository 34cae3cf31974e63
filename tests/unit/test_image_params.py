"""Image URL parameters, layout arithmetic and Accept negotiation, without pixels."""

from __future__ import annotations

import pytest

from core import urlsign
from imgtransform.geometry import Layout, anchor, layout
from imgtransform.negotiate import SOURCE, format_class
from imgtransform.params import InvalidParameter, Transform, parse_query

WHOLE = (1920.0, 1080.0)


def parse(query: str) -> Transform:
    items = [tuple(part.split("=", 1)) for part in query.split("&") if part]
    return parse_query(items, 4096)[0]  # type: ignore[arg-type]


def test_spellings_of_one_request_share_a_canonical_form() -> None:
    assert parse("w=0400&fit=fit&gravity=ce&dpr=1").canonical() == parse("w=400").canonical() == "w=400"
    assert parse("h=200&w=200&fit=cover").canonical() == "w=200&h=200&fit=cover"
    assert parse("format=jpg").format == "jpeg"


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("w=0", "w"),
        ("w=100000", "w"),
        ("w=-5", "w"),
        ("w=1e3", "w"),
        ("q=0", "q"),
        ("q=101", "q"),
        ("rotate=45", "rotate"),
        ("dpr=10", "dpr"),
        ("dpr=0.5", "dpr"),
        ("blur=101", "blur"),
        ("sharpen=11", "sharpen"),
        ("fit=stretch", "fit"),
        ("gravity=nw", "gravity"),
        ("format=gif", "format"),
        ("width=100", "width"),
        ("w=100&w=200", "w"),
    ],
)
def test_bad_parameters_name_themselves(query: str, parameter: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse(query)
    assert caught.value.parameter == parameter


def test_signature_parameters_are_set_apart() -> None:
    items = [("w", "10"), ("expires", "1"), ("key_id", "AK"), ("sig", "ab")]
    transform, signature = parse_query(items, 4096)
    assert transform == Transform(w=10)
    assert signature == {"expires": "1", "key_id": "AK", "sig": "ab"}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("w=400", Layout(WHOLE, (400, 225))),
        ("w=4000", Layout(WHOLE, (1920, 1080))),  # fit never upscales
        ("w=4000&fit=contain", Layout(WHOLE, (4000, 2250))),
        ("w=400&h=400&fit=fit", Layout(WHOLE, (400, 225))),
        ("w=200&h=200&fit=cover", Layout((1080.0, 1080.0), (200, 200))),
        ("w=3000&h=3000&fit=cover", Layout((1080.0, 1080.0), (3000, 3000))),
        ("w=400&h=100&fit=cover", Layout((1920.0, 480.0), (400, 100))),
        ("w=200&h=200&fit=fill", Layout((1080.0, 1080.0), (200, 200))),
        ("w=3000&h=3000&fit=fill", Layout((1080.0, 1080.0), (1080, 1080))),
        ("w=100&h=50&fit=crop", Layout((100.0, 50.0), (100, 50))),
        ("w=4000&h=50&fit=crop", Layout((1920.0, 50.0), (1920, 50))),
        ("w=400&h=400&fit=pad", Layout(WHOLE, (400, 225), canvas=(400, 400))),
        ("w=200&dpr=2", Layout(WHOLE, (400, 225))),
        ("h=4096&w=4096&fit=contain", Layout(WHOLE, (4096, 2304))),
        ("w=4096&dpr=3&fit=contain", Layout(WHOLE, (4096, 2304))),  # capped after dpr
    ],
)
def test_layouts_of_a_1920x1080_source(query: str, expected: Layout) -> None:
    assert layout((1920, 1080), parse(query), 4096) == expected


def test_anchor_places_the_inner_box_at_each_gravity() -> None:
    outer, inner = (300, 200), (100, 100)
    assert anchor("ce", outer, inner) == (100, 50)
    assert anchor("no", outer, inner) == (100, 0)
    assert anchor("so", outer, inner) == (100, 100)
    assert anchor("we", outer, inner) == (0, 50)
    assert anchor("ea", outer, inner) == (200, 50)


@pytest.mark.parametrize(
    "accept, expected",
    [
        ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "avif"),
        ("image/webp,*/*", "webp"),
        ("image/avif;q=0,image/webp", "webp"),
        ("*/*", SOURCE),
        (None, SOURCE),
    ],
)
def test_format_class_comes_from_accept(accept: str | None, expected: str) -> None:
    assert format_class(None, accept) == expected


def test_an_explicit_format_wins_over_accept() -> None:
    assert format_class("png", "image/avif") == "png"


def test_the_documented_signing_recipe_matches_the_verifier() -> None:
    query = urlsign.signed_query("secret", "AK1", "/api/img/b/photos/a b.jpg", {"w": "400"}, 1767225600)
    assert query.startswith("expires=1767225600&key_id=AK1&w=400&sig=")
    params = dict(part.split("=", 1) for part in query.split("&"))
    assert urlsign.signature_matches("secret", "/api/img/b/photos/a b.jpg", params)
    assert not urlsign.signature_matches("secret", "/api/img/b/photos/other.jpg", params)
    assert not urlsign.signature_matches("other", "/api/img/b/photos/a b.jpg", params)
