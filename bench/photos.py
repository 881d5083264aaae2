"""A folder of photo-sized JPEGs (300–800 px, like dogImages) for the data benchmarks.

Smooth colour fields plus grain, so JPEG sizes and decode costs resemble photographs rather than
flat synthetic tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_photos(root: Path, count: int, *, classes: int = 4, seed: int = 0) -> list[Path]:
    """Write ``count`` JPEGs as ``root/<class>/<n>.jpg`` (an ImageFolder) and return their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        width, height = (int(v) for v in rng.integers(300, 801, size=2))
        coarse = rng.integers(0, 256, size=(height // 40 + 2, width // 40 + 2, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(height, width, 3))
        folder = root / f"{index % classes:03d}.breed"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:05d}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths
