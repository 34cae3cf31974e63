"""The image-transform benchmark's inputs: source images, their copies, and the transforms compared.

The two sources (a 1920x1080 and a 4000x3000 JPEG, quality 90) are drawn by the bench itself,
deterministically (seeded), so that every run and every server sees the same bytes: photo-like
pictures, smooth gradients and soft shapes under fine texture and sensor-like noise, so that the
JPEGs are about as large (0.57 and 3.2 MB) and as slow to decode as camera pictures of that size.
They are made once and kept in `bench/.cache/`.

Every uncached request must do a real transform on every server, and identical concurrent
requests may be coalesced, so each source is served under `COPIES` distinct names: keys
`src/<source>/NNNN.jpg` in a public-read bucket of Folio (uploaded by the load generator's
`img_prepare` job), and the same relative paths as files under thumbor's `FILE_LOADER_ROOT_PATH`
(`file_tree`). The load generator cycles over them.

`TRANSFORMS` says what each scenario asks of each server: Folio's `/api/img` query and
thumbor's URL options, with the same output size, format and quality, and what the answer must
be (content type and pixel size), checked once per server before the timed runs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SOURCES_VERSION = 1  # bump when the drawing changes: the cached files are named after it
SOURCES: dict[str, tuple[int, int]] = {"1080p": (1920, 1080), "12mp": (4000, 3000)}
SOURCE_QUALITY = 90
COPIES = 32  # distinct names per source: no two requests in flight at concurrency 8 are identical
IMAGE_BUCKET = "img"


@dataclass(frozen=True)
class Transform:
    name: str
    source: str  # a key of SOURCES
    folio: str  # the query of GET /api/img/{bucket}/{key}
    thumbor: str  # thumbor's URL options between /unsafe/ and the image path
    content_type: str
    size: tuple[int, int]  # the answer's width and height

    def path(self, kind: str, copy: int) -> str:
        """The request target for a server of `kind` ("thumbor", else Folio) and one copy."""
        key = source_key(self.source, copy)
        if kind == "thumbor":
            return f"/unsafe/{self.thumbor}/{key}"
        return f"/api/img/{IMAGE_BUCKET}/{key}?{self.folio}"


# Quality equal on both sides: thumbor's QUALITY default (80) for JPEG and WebP, Folio's AVIF
# default (60) for AVIF. Formats are always named, so nothing depends on Accept negotiation.
TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform(
            "webp400",
            "1080p",
            "w=400&format=webp&q=80",
            "400x0/filters:format(webp):quality(80)",
            "image/webp",
            (400, 225),
        ),
        Transform(
            "smart200",
            "1080p",
            "w=200&h=200&fit=cover&gravity=sm&format=jpeg&q=80",
            "200x200/smart/filters:quality(80)",
            "image/jpeg",
            (200, 200),
        ),
        Transform(
            "jpeg800",
            "12mp",
            "w=800&format=jpeg&q=80",
            "800x0/filters:format(jpeg):quality(80)",
            "image/jpeg",
            (800, 600),
        ),
        Transform(
            "avif800",
            "12mp",
            "w=800&format=avif&q=60",
            "800x0/filters:format(avif):quality(60)",
            "image/avif",
            (800, 600),
        ),
    )
}


def source_key(source: str, copy: int) -> str:
    return f"src/{source}/{copy:04d}.jpg"


def _draw(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: a sky-to-ground gradient, soft shapes, a saturated detailed subject off
    centre (something for a smart crop to find), fine texture and Gaussian sensor noise."""
    import io
    import random

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    base = np.empty((height, width, 3), np.float32)
    base[..., 0] = 70 + 120 * v + 25 * np.sin(6.0 * u + 1.3)
    base[..., 1] = 110 + 60 * (1 - v) + 20 * np.sin(4.0 * v + 5.0 * u)
    base[..., 2] = 200 - 130 * v + 15 * np.cos(7.0 * u)
    picture = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    shapes = Image.new("RGB", (width, height))
    mask = Image.new("L", (width, height))
    draw, mask_draw = ImageDraw.Draw(shapes), ImageDraw.Draw(mask)
    pick = random.Random(seed)
    scale = min(width, height)
    for _ in range(60):
        cx, cy = pick.uniform(0, width), pick.uniform(0, height)
        r = pick.uniform(0.02, 0.15) * scale
        box = (cx - r, cy - r * pick.uniform(0.5, 1.5), cx + r, cy + r * pick.uniform(0.5, 1.5))
        colour = tuple(pick.randrange(256) for _ in range(3))
        if pick.random() < 0.5:
            draw.ellipse(box, fill=colour)
            mask_draw.ellipse(box, fill=pick.randrange(120, 256))
        else:
            draw.rectangle(box, fill=colour)
            mask_draw.rectangle(box, fill=pick.randrange(120, 256))
    blur = ImageFilter.GaussianBlur(scale / 400)
    picture = Image.composite(shapes.filter(blur), picture, mask.filter(blur))
    # The subject: a warm, busy patch in the right third, a little above the middle.
    sx, sy, sr = int(0.7 * width), int(0.4 * height), int(0.12 * scale)
    patch = rng.integers(0, 256, (2 * sr // 8, 2 * sr // 8, 3), dtype=np.uint8)
    patch[..., 0] = np.maximum(patch[..., 0], 180)
    subject = Image.fromarray(patch, "RGB").resize((2 * sr, 2 * sr), Image.Resampling.BICUBIC)
    round_mask = Image.new("L", (2 * sr, 2 * sr))
    ImageDraw.Draw(round_mask).ellipse((0, 0, 2 * sr - 1, 2 * sr - 1), fill=255)
    picture.paste(subject, (sx - sr, sy - sr), round_mask)
    # Texture (foliage, fabric: detail at a few pixels' scale) and fine sensor noise.
    coarse = rng.normal(0.0, 16.0, (height // 3, width // 3)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.Resampling.BICUBIC))
    noise = rng.normal(0.0, 4.0, (height, width, 3)).astype(np.float32)
    pixels = np.asarray(picture, np.float32) + texture[..., None] + noise
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=SOURCE_QUALITY)
    return out.getvalue()


def ensure_sources() -> dict[str, Path]:
    """The source JPEGs, drawn on first use and kept in bench/.cache (written atomically)."""
    folder = CACHE_DIR / f"img-sources-v{SOURCES_VERSION}"
    paths = {name: folder / f"{name}.jpg" for name in SOURCES}
    for seed, (name, (width, height)) in enumerate(SOURCES.items(), 1):
        path = paths[name]
        if path.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(_draw(width, height, seed))
        partial.replace(path)
    return paths


def file_tree(root: Path) -> Path:
    """`COPIES` copies of each source as files under `root` (thumbor's file loader root); reused if
    already complete."""
    for name, source in ensure_sources().items():
        for copy in range(COPIES):
            target = root / source_key(name, copy)
            if target.exists() and target.stat().st_size == source.stat().st_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return root
