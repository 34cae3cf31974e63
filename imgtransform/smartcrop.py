"""`gravity=sm`: where to crop so the most interesting part stays, after libvips'
"attention" strategy and smartcrop.js. A small copy of the image is scored for
edges (detail), skin tones and saturation; the crop window with the highest total
wins, and among near-equal windows the one centred nearest the interest's centre of
mass. A (nearly) flat image has nothing to tell: the centre."""

from __future__ import annotations

import numpy as np
from PIL import Image

from imgtransform.geometry import Size, anchor

ANALYSIS_SIDE = 256
# Below this peak score the image is flat: no edge, skin or colour worth keeping.
FLAT = 0.04
# Windows within this share of the best score count as equally good.
TIE = 0.99
_SKIN = np.array([0.78, 0.57, 0.44], dtype=np.float32)
_SKIN /= np.linalg.norm(_SKIN)


def saliency(rgb: np.ndarray) -> np.ndarray:
    """Interest per pixel, from an HxWx3 float array in 0..1."""
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    edges = np.zeros_like(luma)
    # 4-neighbour Laplacian: detail and edges.
    edges[1:-1, 1:-1] = np.abs(
        4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    )
    norm = np.linalg.norm(rgb, axis=2) + 1e-6
    skin_likeness = 1.0 - np.linalg.norm(rgb / norm[..., None] - _SKIN, axis=2)
    skin = np.clip((skin_likeness - 0.8) / 0.2, 0, 1) * ((luma > 0.2) & (luma < 0.95))
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = (high - low) / (high + 1e-6)
    colourful = np.clip((saturation - 0.4) / 0.6, 0, 1) * ((luma > 0.05) & (luma < 0.9))
    return np.clip(edges * 4.0, 0, 1) + 0.6 * skin + 0.4 * colourful


def _analysis_copy(image: Image.Image) -> tuple[np.ndarray, float]:
    scale = min(1.0, ANALYSIS_SIDE / max(image.size))
    small = (
        image
        if scale == 1.0
        else image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
    )
    if small.mode != "RGB":
        small = small.convert("RGB")
    return np.asarray(small, dtype=np.float32) / 255.0, scale


def best_offset(image: Image.Image, window: Size) -> tuple[int, int]:
    """Top-left corner of the `window`-sized crop of `image` that keeps the most."""
    outer = image.size
    if window[0] >= outer[0] and window[1] >= outer[1]:
        return 0, 0
    rgb, scale = _analysis_copy(image)
    score = saliency(rgb)
    if float(score.max()) < FLAT:
        return anchor("ce", outer, window)
    rows, cols = score.shape
    win_w = min(cols, max(1, round(window[0] * scale)))
    win_h = min(rows, max(1, round(window[1] * scale)))
    table = np.zeros((rows + 1, cols + 1), dtype=np.float64)
    table[1:, 1:] = score.cumsum(axis=0).cumsum(axis=1)
    sums = table[win_h:, win_w:] - table[:-win_h, win_w:] - table[win_h:, :-win_w] + table[:-win_h, :-win_w]
    best = float(sums.max())
    total = float(score.sum())
    ys, xs = np.mgrid[0:rows, 0:cols]
    centre_x, centre_y = float((xs * score).sum() / total), float((ys * score).sum() / total)
    candidates_y, candidates_x = np.nonzero(sums >= best * TIE)
    distance = (candidates_x + win_w / 2 - centre_x) ** 2 + (candidates_y + win_h / 2 - centre_y) ** 2
    pick = int(np.argmin(distance))
    x = round(int(candidates_x[pick]) / scale)
    y = round(int(candidates_y[pick]) / scale)
    return min(max(0, x), outer[0] - window[0]), min(max(0, y), outer[1] - window[1])
