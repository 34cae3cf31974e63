"""Shared helpers for the image-transform tests (`/api/img/...`, docs/image-transforms.md).

Every picture is made in memory with Pillow and NumPy: synthetic scenes whose geometry
the tests know exactly (a red square on flat grey, a saturated mosaic "subject" on a
flat background), and hostile files (PNG bombs that cost a few kilobytes, truncated
JPEGs). Answers are decoded with Pillow, never trusted by their Content-Type alone.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from PIL import Image

from tests.folio_process import FolioProcess

GREY = (128, 128, 128)
RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)

# ---------------------------------------------------------------- HTTP


def _never_5xx(response: httpx.Response) -> None:
    # Whatever a test sends, the image endpoint must answer deliberately: a 5xx other
    # than the documented 503s (Busy, TransformTimeout) is a bug.
    if response.status_code >= 500 and response.status_code != 503:
        response.read()
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered {response.status_code}: "
            f"{response.text[:500]}"
        )


def img_client(server: FolioProcess, api_key: str | None = None, **headers: str) -> httpx.Client:
    """httpx on Folio's web listener (no proxy from the environment), failing on any 500."""
    if api_key is not None:
        headers.setdefault("X-API-Key", api_key)
    return httpx.Client(
        base_url=server.web_url,
        headers=headers,
        trust_env=False,
        timeout=60,
        event_hooks={"response": [_never_5xx]},
    )


def img_path(bucket: str, key: str) -> str:
    return f"/api/img/{quote(bucket, safe='')}/{quote(key)}"


def img_url(bucket: str, key: str, query: str = "") -> str:
    """The path and exact query (kept as written: order, repeats and junk included)."""
    return img_path(bucket, key) + (f"?{query}" if query else "")


def get_img(
    client: httpx.Client, bucket: str, key: str, query: str = "", accept: str | None = None, **headers: str
) -> httpx.Response:
    if accept is not None:
        headers["Accept"] = accept
    return client.get(img_url(bucket, key, query), headers=headers)


def api_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the documented JSON error `{"error": {"code", "message", ...}}` and return it."""
    assert response.status_code == status, (response.status_code, response.headers, response.text[:500])
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def image_of(response: httpx.Response, status: int = 200) -> Image.Image:
    """Assert an image answer (status, Content-Length) and decode its body with Pillow."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert int(response.headers["content-length"]) == len(response.content)
    return decode(response.content)


# ---------------------------------------------------------------- encode / decode


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def rgb_array(img: Image.Image) -> np.ndarray:
    """H x W x 3 int array (alpha dropped; transparent pixels keep their colour)."""
    return np.asarray(img.convert("RGB"), dtype=np.int32)


def alpha_array(img: Image.Image) -> np.ndarray:
    assert img.mode in ("RGBA", "LA", "PA", "P"), img.mode
    return np.asarray(img.convert("RGBA"), dtype=np.int32)[:, :, 3]


def mean_colour(img: Image.Image, box: Box | None = None) -> tuple[float, float, float]:
    pixels = rgb_array(img)
    if box is not None:
        left, top, right, bottom = box
        pixels = pixels[top:bottom, left:right]
    r, g, b = pixels.reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def is_red(colour: tuple[float, float, float]) -> bool:
    r, g, b = colour
    return r > 170 and g < 90 and b < 90


def is_blue(colour: tuple[float, float, float]) -> bool:
    r, g, b = colour
    return b > 170 and r < 90 and g < 90


# ---------------------------------------------------------------- scenes


def red_square_scene(size: tuple[int, int], square: Box, background=GREY) -> Image.Image:
    """Flat grey with one pure red rectangle: where the red lands shows the crop."""
    img = Image.new("RGB", size, background)
    img.paste(RED, square)
    return img


def red_mask(img: Image.Image) -> np.ndarray:
    px = rgb_array(img)
    mask = (px[:, :, 0] > 170) & (px[:, :, 1] < 90) & (px[:, :, 2] < 90)
    if img.mode in ("RGBA", "LA", "PA"):
        mask &= alpha_array(img) > 128
    return mask


def bbox(mask: np.ndarray) -> Box | None:
    """Bounding box of the True pixels (right/bottom exclusive), None when there are none."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def red_box(img: Image.Image) -> Box | None:
    return bbox(red_mask(img))


def assert_box_near(got: Box | None, expected: Box | None, tolerance: int, context: object = "") -> None:
    if expected is None:
        assert got is None, f"expected no red pixels, found them at {got} ({context})"
        return
    assert got is not None, f"expected red pixels at {expected}, found none ({context})"
    assert all(abs(g - e) <= tolerance for g, e in zip(got, expected, strict=True)), (
        f"red at {got}, expected {expected} ± {tolerance} ({context})"
    )


# Saturated, high-contrast colours for the "subject" mosaic (edges, saturation).
_MOSAIC = np.array(
    [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0)],
    dtype=np.uint8,
)


def subject_scene(size: tuple[int, int], subject: Box, block: int = 10, seed: int = 7) -> Image.Image:
    """A flat grey picture with one textured, saturated, edgy patch (the "subject")."""
    width, height = size
    pixels = np.full((height, width, 3), GREY, dtype=np.uint8)
    left, top, right, bottom = subject
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, len(_MOSAIC), ((bottom - top) // block + 1, (right - left) // block + 1))
    patch = _MOSAIC[np.kron(blocks, np.ones((block, block), dtype=np.int64))]
    pixels[top:bottom, left:right] = patch[: bottom - top, : right - left]
    return Image.fromarray(pixels, "RGB")


def subject_mask(img: Image.Image) -> np.ndarray:
    """Pixels that are clearly not the flat grey background."""
    px = rgb_array(img)
    return np.abs(px - np.array(GREY)).max(axis=2) > 48


# ---------------------------------------------------------------- hostile files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(width: int, height: int, bit_depth: int = 1) -> bytes:
    """A valid greyscale PNG of `width` x `height` zero pixels, zlib-compressed to almost
    nothing: a 20,000 x 20,000 1-bit one is ~50 KB on the wire and 400 MB decoded by Pillow."""
    row = bytes(1 + (width * bit_depth + 7) // 8)  # filter byte 0 + the zero pixels
    compressor = zlib.compressobj(9)
    rows_per_piece = max(1, (4 << 20) // len(row))
    piece = row * rows_per_piece
    parts = []
    remaining = height
    while remaining > 0:
        count = min(rows_per_piece, remaining)
        parts.append(compressor.compress(piece if count == rows_per_piece else row * count))
        remaining -= count
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    )


def png_with_claimed_size(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR (CRC fixed up) claims `width` x `height`."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def noisy_jpeg(size: tuple[int, int], quality: int = 90, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels, "RGB"), "JPEG", quality=quality)


def smooth_picture(size: tuple[int, int]) -> Image.Image:
    """A large, photo-like (smooth, colourful) picture: cheap to store as JPEG, real work
    to resize and encode."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 120 * np.sin(x / 37.0) * np.cos(y / 53.0)
    g = 127 + 120 * np.sin((x + y) / 71.0)
    b = 127 + 120 * np.cos(x / 23.0 - y / 41.0)
    pixels = np.stack([r, g, b], axis=2).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


# ---------------------------------------------------------------- /proc


def proc_status_kb(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in kB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


# ---------------------------------------------------------------- ICC


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def swapped_primaries_icc() -> bytes:
    """A small ICC v2 RGB display profile whose red and blue primaries are sRGB's blue
    and red: a pixel stored as (255, 0, 0) under it *is* sRGB blue. A converter that
    honours embedded profiles turns it blue; one that ignores them leaves it red."""
    d50 = (0.9642, 1.0, 0.8249)
    srgb_red, srgb_green, srgb_blue = (
        (0.4361, 0.2225, 0.0139),
        (0.3851, 0.7169, 0.0971),
        (0.1431, 0.0606, 0.7141),
    )
    text = b"Folio swapped primaries\x00"
    desc = (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(text))
        + text
        + bytes(4)
        + bytes(4)
        + bytes(2)
        + bytes(1)
        + bytes(67)
    )
    curve = b"curv" + bytes(4) + struct.pack(">I", 1) + struct.pack(">H", round(2.2 * 256)) + bytes(2)
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz_tag(*d50)),
        (b"rXYZ", _xyz_tag(*srgb_blue)),
        (b"gXYZ", _xyz_tag(*srgb_green)),
        (b"bXYZ", _xyz_tag(*srgb_red)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = bytearray(struct.pack(">I", len(tags))), bytearray()
    for signature, body in tags:
        while (offset + len(data)) % 4:
            data += b"\x00"
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    while len(data) % 4:
        data += b"\x00"
    size = 128 + len(table) + len(data)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8)
        + struct.pack(">I", 0)
        + _s15(d50[0])
        + _s15(d50[1])
        + _s15(d50[2])
        + bytes(4)
        + bytes(16)
        + bytes(28)
    )
    assert len(header) == 128, len(header)
    return header + bytes(table) + bytes(data)
