"""Image transforms, geometry (docs/image-transforms.md, "fit modes", "gravity"), against
the real server over HTTP.

Sources are synthetic pictures whose content the tests know exactly: a pure red square
on flat grey, placed off-centre, so where the red lands in the answer shows which part
of the source was kept; a saturated, edgy mosaic patch on flat grey for smart gravity.
Every answer is decoded with Pillow and its size and pixels are asserted.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from tests.conftest import new_bucket
from tests.folio_process import FolioProcess
from tests.imgtools import (
    BLUE,
    GREEN,
    GREY,
    RED,
    Box,
    alpha_array,
    assert_box_near,
    decode,
    encode,
    get_img,
    image_of,
    img_client,
    is_blue,
    is_red,
    mean_colour,
    red_box,
    red_square_scene,
    rgb_array,
    subject_mask,
    subject_scene,
    swapped_primaries_icc,
)

# 400x300 (4:3), red square in the top-left quadrant.
MAIN_SIZE = (400, 300)
MAIN_RED = (40, 40, 120, 120)
# Wide and tall sources for the crop position, red square off-centre along the long side.
WIDE_SIZE, WIDE_RED = (600, 200), (180, 80, 220, 120)
TALL_SIZE, TALL_RED = (200, 600), (80, 180, 120, 220)


@pytest.fixture(scope="module")
def geo_bucket(s3) -> Iterator[str]:
    yield from new_bucket(s3, "imggeo")


@pytest.fixture(scope="module")
def owner(folio: FolioProcess) -> Iterator[httpx.Client]:
    with img_client(folio, f"{folio.access_key}:{folio.secret_key}") as client:
        yield client


@pytest.fixture(scope="module")
def sources(s3, geo_bucket: str) -> dict[str, str]:
    """Upload every synthetic source once; name -> key."""
    pictures = {
        "main.png": encode(red_square_scene(MAIN_SIZE, MAIN_RED), "PNG"),
        "wide.png": encode(red_square_scene(WIDE_SIZE, WIDE_RED), "PNG"),
        "tall.png": encode(red_square_scene(TALL_SIZE, TALL_RED), "PNG"),
        "padwide.png": encode(Image.new("RGB", (400, 200), GREY), "PNG"),
        "padtall.png": encode(Image.new("RGB", (200, 400), GREY), "PNG"),
    }
    for key, body in pictures.items():
        s3.put_object(Bucket=geo_bucket, Key=key, Body=body, ContentType="image/png")
    return {key: key for key in pictures}


def transform(client: httpx.Client, bucket: str, key: str, query: str, **headers: str) -> Image.Image:
    return image_of(get_img(client, bucket, key, query, **headers))


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # fit (the default): inside the box, aspect kept, never upscaled.
        ("", (400, 300)),
        ("w=200&h=200", (200, 150)),
        ("w=200&h=200&fit=fit", (200, 150)),
        ("w=800&h=800&fit=fit", (400, 300)),
        # contain: the same, but upscaled when smaller.
        ("w=200&h=200&fit=contain", (200, 150)),
        ("w=800&h=800&fit=contain", (800, 600)),
        # cover: exactly w x h, upscaling if needed.
        ("w=200&h=200&fit=cover", (200, 200)),
        ("w=800&h=800&fit=cover", (800, 800)),
        # fill: like cover, never upscaled: a smaller source is cropped to the aspect w:h.
        ("w=200&h=200&fit=fill", (200, 200)),
        ("w=800&h=800&fit=fill", (300, 300)),
        ("w=800&h=400&fit=fill", (400, 200)),
        # crop: the w x h region, no scaling, clamped to the source.
        ("w=200&h=200&fit=crop", (200, 200)),
        ("w=800&h=800&fit=crop", (400, 300)),
        ("w=100&h=500&fit=crop", (100, 300)),
        # pad: exactly w x h whatever the source.
        ("w=200&h=200&fit=pad", (200, 200)),
        ("w=800&h=800&fit=pad", (800, 800)),
        # Only one side: the other follows the source's aspect.
        ("w=200", (200, 150)),
        ("h=150", (200, 150)),
        ("h=100", (133, 100)),
        ("w=200&fit=cover", (200, 150)),
        ("w=800&fit=contain", (800, 600)),
        ("w=800", (400, 300)),  # fit never upscales
        # dpr multiplies w and h.
        ("w=100&dpr=2", (200, 150)),
        ("w=100&h=100&fit=cover&dpr=2", (200, 200)),
        ("w=200&h=100&fit=cover&dpr=1.5", (300, 150)),
        ("w=100&h=100&fit=cover&dpr=3", (300, 300)),
        ("w=100&h=100&fit=pad&dpr=2", (200, 200)),
        # The 4096 cap applies after dpr, keeping the aspect.
        ("w=4000&h=1000&fit=cover&dpr=2&format=jpeg", (4096, 1024)),
        # rotate happens before the fit: the source is then 300x400.
        ("rotate=90", (300, 400)),
        ("rotate=270", (300, 400)),
        ("rotate=180", (400, 300)),
        ("rotate=90&w=150", (150, 200)),
        ("rotate=270&h=200", (150, 200)),
    ],
)
def test_output_size(
    owner: httpx.Client, geo_bucket: str, sources: dict, query: str, expected: tuple
) -> None:
    out = transform(owner, geo_bucket, sources["main.png"], query)
    assert out.size == expected, f"?{query}: {out.size} != {expected}"


def test_scaled_modes_keep_the_whole_picture_where_they_should(
    owner: httpx.Client, geo_bucket: str, sources: dict
) -> None:
    """fit/contain scale the whole picture (the red square scales with it); crop keeps
    pixels 1:1."""
    half = transform(owner, geo_bucket, sources["main.png"], "w=200&h=200&fit=fit")
    assert_box_near(red_box(half), (20, 20, 60, 60), 2, "fit 200x200 = half size")
    double = transform(owner, geo_bucket, sources["main.png"], "w=800&h=800&fit=contain")
    assert_box_near(red_box(double), (80, 80, 240, 240), 3, "contain 800x800 = double size")
    cropped = transform(owner, geo_bucket, sources["main.png"], "w=200&h=200&fit=crop&gravity=no")
    # Top centre 200x200 window of 400x300: x from 100, y from 0; the red is at x 40..120.
    assert_box_near(red_box(cropped), (0, 40, 20, 120), 1, "crop, no scaling")


def test_rotate_90_swaps_sides_and_turns_clockwise(
    owner: httpx.Client, geo_bucket: str, sources: dict
) -> None:
    # Red at (40..120, 40..120) of 400x300; a clockwise quarter turn maps (x, y) to (299 - y, x).
    out = transform(owner, geo_bucket, sources["main.png"], "rotate=90")
    assert out.size == (300, 400)
    assert_box_near(red_box(out), (180, 40, 260, 120), 1, "rotate=90")
    out = transform(owner, geo_bucket, sources["main.png"], "rotate=270")
    assert_box_near(red_box(out), (40, 280, 120, 360), 1, "rotate=270")
    out = transform(owner, geo_bucket, sources["main.png"], "rotate=180")
    assert_box_near(red_box(out), (280, 180, 360, 260), 1, "rotate=180")


# ---------------------------------------------------------------- gravity (crop position)


def expected_red(
    src_size: tuple[int, int], red: Box, scale: float, out_size: tuple[int, int], gravity: str
) -> Box | None:
    """Where the red square lands: the source scaled by `scale`, then the `out_size`
    window at `gravity` (centre on the axis a gravity does not name)."""
    sw, sh = round(src_size[0] * scale), round(src_size[1] * scale)
    cw, ch = out_size
    ox = {"we": 0, "ea": sw - cw}.get(gravity, (sw - cw) / 2)
    oy = {"no": 0, "so": sh - ch}.get(gravity, (sh - ch) / 2)
    left, top, right, bottom = (
        red[0] * scale - ox,
        red[1] * scale - oy,
        red[2] * scale - ox,
        red[3] * scale - oy,
    )
    left, top, right, bottom = max(left, 0), max(top, 0), min(right, cw), min(bottom, ch)
    if right <= left or bottom <= top:
        return None
    return round(left), round(top), round(right), round(bottom)


# mode -> (query on the wide source, scale, output size on the wide source); the tall
# source uses the transposed query and size.
CROP_MODES = {
    "crop": ((300, 200), 1.0, (300, 200)),
    # cover 150x100 of 600x200: scaled by 0.5 to 300x100, then 150 wide kept.
    "cover": ((150, 100), 0.5, (150, 100)),
    # fill 900x600 of 600x200 (smaller): cropped to 3:2 at gravity, at source scale.
    "fill": ((900, 600), 1.0, (300, 200)),
}


@pytest.mark.parametrize("gravity", ["ce", "no", "so", "ea", "we"])
@pytest.mark.parametrize("mode", sorted(CROP_MODES))
@pytest.mark.parametrize("shape", ["wide", "tall"])
def test_crop_keeps_the_part_named_by_gravity(
    owner: httpx.Client, geo_bucket: str, sources: dict, shape: str, mode: str, gravity: str
) -> None:
    (w, h), scale, out_size = CROP_MODES[mode]
    src_size, red = WIDE_SIZE, WIDE_RED
    if shape == "tall":
        (w, h), out_size, src_size, red = (h, w), out_size[::-1], TALL_SIZE, TALL_RED
    out = transform(owner, geo_bucket, sources[f"{shape}.png"], f"w={w}&h={h}&fit={mode}&gravity={gravity}")
    assert out.size == out_size
    expected = expected_red(src_size, red, scale, out_size, gravity)
    assert_box_near(red_box(out), expected, 2 if scale != 1 else 1, f"{shape} {mode} {gravity}")


def test_gravity_cases_are_distinct(owner: httpx.Client, geo_bucket: str, sources: dict) -> None:
    """Sanity of the fixture above: on the wide source, west keeps the red square, east
    does not, centre keeps it near its left edge."""
    boxes = {
        g: red_box(transform(owner, geo_bucket, sources["wide.png"], f"w=300&h=200&fit=crop&gravity={g}"))
        for g in ("we", "ce", "ea")
    }
    assert boxes["we"] is not None and boxes["ce"] is not None and boxes["ea"] is None, boxes
    assert boxes["we"][0] - boxes["ce"][0] == 150, boxes


# ---------------------------------------------------------------- pad


@pytest.mark.parametrize(
    ("shape", "gravity", "placed"),
    [
        ("padwide", "ce", (0, 100, 400, 300)),
        ("padwide", "no", (0, 0, 400, 200)),
        ("padwide", "so", (0, 200, 400, 400)),
        ("padwide", "we", (0, 100, 400, 300)),
        ("padwide", "sm", (0, 100, 400, 300)),
        ("padtall", "ce", (100, 0, 300, 400)),
        ("padtall", "we", (0, 0, 200, 400)),
        ("padtall", "ea", (200, 0, 400, 400)),
        ("padtall", "no", (100, 0, 300, 400)),
        ("padtall", "sm", (100, 0, 300, 400)),
    ],
)
def test_pad_places_the_picture_at_gravity_on_a_transparent_canvas(
    owner: httpx.Client, geo_bucket: str, sources: dict, shape: str, gravity: str, placed: Box
) -> None:
    out = transform(
        owner, geo_bucket, sources[f"{shape}.png"], f"w=400&h=400&fit=pad&gravity={gravity}&format=png"
    )
    assert out.size == (400, 400)
    opaque = alpha_array(out) > 128
    ys, xs = np.nonzero(opaque)
    got = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    assert_box_near(got, placed, 1, f"{shape} pad {gravity}")
    left, top, right, bottom = placed
    # Inside: the grey picture, fully opaque; outside: nothing at all.
    assert opaque[top + 2 : bottom - 2, left + 2 : right - 2].all()
    assert opaque.sum() <= (right - left + 2) * (bottom - top + 2)


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_pad_is_transparent_in_formats_with_alpha(
    owner: httpx.Client, geo_bucket: str, sources: dict, fmt: str
) -> None:
    out = transform(owner, geo_bucket, sources["main.png"], f"w=200&h=200&fit=pad&format={fmt}")
    assert out.format == fmt.upper()
    assert out.size == (200, 200)
    alpha = alpha_array(out)
    # 400x300 fits as 200x150, centred: rows 25..175 are the picture, the bands are empty.
    assert alpha[:20, :].max() < 16, "top band must be transparent"
    assert alpha[180:, :].max() < 16, "bottom band must be transparent"
    assert alpha[30:170, 5:195].min() > 240, "the picture itself stays opaque"
    # The red square (40..120 of the source) lands at x 20..60, y 25 + 20..60.
    assert is_red(mean_colour(out, (25, 50, 55, 80)))


def test_pad_is_white_in_jpeg(owner: httpx.Client, geo_bucket: str, sources: dict) -> None:
    out = transform(owner, geo_bucket, sources["main.png"], "w=200&h=200&fit=pad&format=jpeg")
    assert out.format == "JPEG"
    assert out.size == (200, 200)
    px = rgb_array(out)
    assert px[:20, :].min() > 240, "top band must be white"
    assert px[180:, :].min() > 240, "bottom band must be white"
    r, g, b = mean_colour(out, (100, 60, 190, 160))
    assert all(abs(c - 128) < 12 for c in (r, g, b)), "the grey picture sits in the middle"


# ---------------------------------------------------------------- smart gravity


# A wide and a tall flat source, each with one textured subject far off-centre: for all
# three crop aspects the centred window misses the subject entirely.
SMART_SCENES = {
    "wide": ((1600, 600), (1350, 200, 1500, 350)),
    "tall": ((600, 1600), (60, 1420, 200, 1560)),
}


@pytest.fixture(scope="module")
def smart_sources(s3, geo_bucket: str) -> dict[str, str]:
    keys = {}
    for name, (size, subject) in SMART_SCENES.items():
        key = f"smart-{name}.png"
        s3.put_object(Bucket=geo_bucket, Key=key, Body=encode(subject_scene(size, subject), "PNG"))
        keys[name] = key
    return keys


@pytest.mark.parametrize("scene", sorted(SMART_SCENES))
@pytest.mark.parametrize("crop", [(200, 200), (400, 300), (300, 600)])
def test_smart_gravity_keeps_the_subject(
    owner: httpx.Client, geo_bucket: str, smart_sources: dict, scene: str, crop: tuple[int, int]
) -> None:
    (src_w, src_h), (left, top, right, bottom) = SMART_SCENES[scene]
    w, h = crop
    out = transform(owner, geo_bucket, smart_sources[scene], f"w={w}&h={h}&fit=cover&gravity=sm")
    assert out.size == (w, h)
    scale = max(w / src_w, h / src_h)
    subject_area = (right - left) * scale * (bottom - top) * scale
    kept = int(subject_mask(out).sum())
    assert kept >= 0.7 * subject_area, (
        f"{scene} {w}x{h}: only {kept} subject pixels kept of {subject_area:.0f}"
    )
    # The centred crop of the same picture misses it entirely: sm really moved the window.
    centred = transform(owner, geo_bucket, smart_sources[scene], f"w={w}&h={h}&fit=cover&gravity=ce")
    assert subject_mask(centred).sum() < 0.05 * subject_area


# ---------------------------------------------------------------- EXIF, CMYK, GIF, metadata


def upright_scene() -> Image.Image:
    """300x200 upright: red square at the top-left corner."""
    return red_square_scene((300, 200), (20, 20, 80, 80))


def exif_orientation_6_jpeg() -> bytes:
    """The upright scene stored turned a quarter counter-clockwise, with Orientation=6
    (rotate 90 clockwise to display) in its EXIF."""
    stored = upright_scene().transpose(Image.Transpose.ROTATE_90)  # 200x300
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "FolioCam"  # Make
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    # Our fixture really is what a camera makes: Pillow's own exif_transpose makes it upright.
    shown = ImageOps.exif_transpose(decode(data))
    assert shown.size == (300, 200) and red_box(shown) is not None and red_box(shown)[0] < 40
    return data


def test_exif_orientation_comes_out_upright(owner: httpx.Client, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="phone.jpg", Body=exif_orientation_6_jpeg(), ContentType="image/jpeg")
    out = transform(owner, bucket, "phone.jpg", "")
    assert out.format == "JPEG"
    assert out.size == (300, 200)
    assert_box_near(red_box(out), (20, 20, 80, 80), 4, "upright")
    # The answer must not carry the orientation again (a browser would turn it twice).
    assert out.getexif().get(0x0112) in (None, 1)

    # rotate applies after auto-orientation: upright 300x200 turned clockwise.
    out = transform(owner, bucket, "phone.jpg", "rotate=90&format=png")
    assert out.size == (200, 300)
    assert_box_near(red_box(out), (120, 20, 180, 80), 4, "upright then rotate=90")

    out = transform(owner, bucket, "phone.jpg", "w=150")
    assert out.size == (150, 100), "w applies to the upright picture"


def test_cmyk_jpeg_is_converted_to_rgb(owner: httpx.Client, s3, bucket: str) -> None:
    cmyk = Image.new("CMYK", (200, 100), (0, 255, 255, 0))  # red in CMYK
    s3.put_object(
        Bucket=bucket, Key="print.jpg", Body=encode(cmyk, "JPEG", quality=95), ContentType="image/jpeg"
    )
    for query, fmt in (("w=100", "JPEG"), ("w=100&format=png", "PNG"), ("w=100&format=webp", "WEBP")):
        out = transform(owner, bucket, "print.jpg", query)
        assert out.format == fmt
        assert out.size == (100, 50)
        assert out.mode in ("RGB", "RGBA", "L"), f"{query}: {out.mode} (CMYK must be converted)"
        assert is_red(mean_colour(out, (10, 10, 90, 40))), (query, mean_colour(out))


def test_animated_gif_gives_its_first_frame(owner: httpx.Client, s3, bucket: str) -> None:
    frames = [Image.new("RGB", (120, 80), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    s3.put_object(Bucket=bucket, Key="anim.gif", Body=data, ContentType="image/gif")
    for query, fmt in (("w=60&format=png", "PNG"), ("w=60&format=webp", "WEBP"), ("w=60", "JPEG")):
        out = transform(owner, bucket, "anim.gif", query)
        # Without format, a GIF source is answered as JPEG ("others give JPEG").
        assert out.format == fmt, query
        assert out.size == (60, 40)
        assert getattr(out, "n_frames", 1) == 1, f"{query}: {out.n_frames} frames"
        assert is_red(mean_colour(out)), (query, mean_colour(out))


def test_metadata_is_stripped(owner: httpx.Client, s3, bucket: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "FolioCam"  # Make
    exif[0x0131] = "FolioSoftware"  # Software
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>FolioXMP</rdf:Description></x:xmpmeta>'
    source = encode(
        red_square_scene((300, 200), (20, 20, 80, 80)), "JPEG", exif=exif.tobytes(), icc_profile=icc, xmp=xmp
    )
    assert b"FolioCam" in source and b"FolioXMP" in source
    s3.put_object(Bucket=bucket, Key="meta.jpg", Body=source, ContentType="image/jpeg")
    for query in ("w=150", "w=150&format=webp", "w=150&format=png", "w=150&format=avif", ""):
        response = get_img(owner, bucket, "meta.jpg", query)
        out = image_of(response)
        assert b"FolioCam" not in response.content and b"FolioSoftware" not in response.content, query
        assert b"FolioXMP" not in response.content, query
        assert len(out.getexif()) == 0, f"{query}: EXIF left: {dict(out.getexif())}"
        assert "exif" not in out.info and not out.info.get("icc_profile"), f"{query}: {sorted(out.info)}"
        assert "xmp" not in out.info, query


def test_blur_softens_the_result(owner: httpx.Client, geo_bucket: str, sources: dict) -> None:
    sharp = rgb_array(transform(owner, geo_bucket, sources["main.png"], "w=200"))
    blurred = rgb_array(transform(owner, geo_bucket, sources["main.png"], "w=200&blur=4"))
    assert sharp.shape == blurred.shape == (150, 200, 3)
    # The square's edge turns into a ramp: fewer pure red pixels, more in-between colours.
    edge_sharp = np.abs(np.diff(sharp[:, :, 0], axis=1)).max()
    edge_blurred = np.abs(np.diff(blurred[:, :, 0], axis=1)).max()
    assert edge_blurred < edge_sharp / 2, (edge_sharp, edge_blurred)


def test_sharpen_raises_local_contrast(owner: httpx.Client, s3, bucket: str) -> None:
    soft = Image.new("L", (200, 100), 100)
    soft.paste(160, (100, 0, 200, 100))
    soft = soft.resize((50, 25)).resize((200, 100), Image.Resampling.BILINEAR)  # a soft edge
    s3.put_object(Bucket=bucket, Key="soft.png", Body=encode(soft.convert("RGB"), "PNG"))
    plain = rgb_array(transform(owner, bucket, "soft.png", "format=png"))[:, :, 0]
    sharp = rgb_array(transform(owner, bucket, "soft.png", "sharpen=5&format=png"))[:, :, 0]
    assert plain.shape == sharp.shape == (100, 200)

    def steepest(a: np.ndarray) -> int:
        return int(np.abs(np.diff(a, axis=1)).max())

    assert steepest(sharp) > steepest(plain), (steepest(plain), steepest(sharp))
    # Unsharp masking overshoots on both sides of the edge.
    assert sharp.min() < plain.min() and sharp.max() > plain.max()


def test_a_source_over_4096_is_capped_even_without_a_size(owner: httpx.Client, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="long.png", Body=encode(Image.new("RGB", (5000, 100), GREY), "PNG"))
    assert transform(owner, bucket, "long.png", "").size == (4096, 82)
    assert transform(owner, bucket, "long.png", "h=100&fit=contain").size == (4096, 82)


def test_smart_gravity_on_a_nearly_flat_picture_is_the_centre(owner: httpx.Client, s3, bucket: str) -> None:
    # Left half 128, right half 129: nothing to tell apart, but the crop position shows.
    flat = Image.new("RGB", (600, 200), (128, 128, 128))
    flat.paste((129, 129, 129), (300, 0, 600, 200))
    s3.put_object(Bucket=bucket, Key="flat.png", Body=encode(flat, "PNG"))
    out = rgb_array(transform(owner, bucket, "flat.png", "w=200&h=200&fit=cover&gravity=sm&format=png"))
    # The centre window is x 200..400: the step sits in its middle.
    assert (out[:, :95] == 128).all() and (out[:, 105:] == 129).all()


def test_embedded_icc_profile_is_honoured(owner: httpx.Client, s3, bucket: str) -> None:
    """Stored (255, 0, 0) under a profile whose "red" primary is sRGB blue: the sRGB
    answer is blue, and carries no profile."""
    icc = swapped_primaries_icc()
    red = Image.new("RGB", (100, 60), RED)
    s3.put_object(Bucket=bucket, Key="icc.png", Body=encode(red, "PNG", icc_profile=icc))
    s3.put_object(Bucket=bucket, Key="icc.jpg", Body=encode(red, "JPEG", quality=95, icc_profile=icc))
    for key in ("icc.png", "icc.jpg"):
        for query in ("w=50", "w=50&format=webp", "w=50&format=png"):
            out = transform(owner, bucket, key, query)
            assert out.size == (50, 30)
            assert is_blue(mean_colour(out)), (key, query, mean_colour(out))
            assert not out.info.get("icc_profile"), (key, query)
