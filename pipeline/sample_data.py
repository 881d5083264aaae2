"""A deterministic synthetic dog-breed data set, shaped like ``dogImages`` (train/valid/test ImageFolder).

Real data cannot be downloaded on the machines this project is developed on, so the demo and the tests
generate "breeds" a small CNN can tell apart in a few epochs: each breed has its own fur colour, coat
texture (plain, stripes, spots, curls) and body shape, drawn at a random place and size on a random
muted background, with per-image jitter. Images are JPEGs of varied sizes (150-500 px per side), as in
the real set. Each image is seeded by ``(seed, breed, split, index)`` alone, so the same arguments always
give byte-identical files. Optional broken files exercise ``preprocess.py``'s quarantine.
"""

from __future__ import annotations

import colorsys
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

BREED_NAMES: tuple[str, ...] = (
    "Affenpinscher",
    "Afghan_hound",
    "Airedale_terrier",
    "Akita",
    "Alaskan_malamute",
    "American_eskimo_dog",
    "American_foxhound",
    "American_staffordshire_terrier",
    "American_water_spaniel",
    "Anatolian_shepherd_dog",
    "Australian_cattle_dog",
    "Australian_shepherd",
    "Australian_terrier",
    "Basenji",
    "Basset_hound",
    "Beagle",
    "Bearded_collie",
    "Beauceron",
    "Bedlington_terrier",
    "Belgian_malinois",
)
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MARKER = ".dogpipe-sample.json"
MIN_SIDE, MAX_SIDE = 150, 500
JPEG_QUALITY = 90
TEXTURES: tuple[str, ...] = ("plain", "stripes", "spots", "curls")
SHAPES: tuple[str, ...] = ("ellipse", "box", "wedge")
GOLDEN = 0.618033988749895


@dataclass(frozen=True)
class Breed:
    """What makes one synthetic breed recognisable."""

    folder: str
    hue: float
    texture: str
    shape: str


def breed_folder(index: int) -> str:
    """``001.Affenpinscher``-style folder names, as in ``dogImages``; generic names past the list."""
    name = BREED_NAMES[index] if index < len(BREED_NAMES) else f"Breed_{index + 1:03d}"
    return f"{index + 1:03d}.{name}"


def make_breeds(count: int) -> list[Breed]:
    """Breeds spread around the colour wheel (golden-ratio steps) with cycling textures and shapes."""
    return [
        Breed(
            folder=breed_folder(index),
            hue=(index * GOLDEN) % 1.0,
            texture=TEXTURES[index % len(TEXTURES)],
            shape=SHAPES[(index // len(TEXTURES) + index) % len(SHAPES)],
        )
        for index in range(count)
    ]


def split_sizes(per_class: int) -> dict[str, int]:
    """Images per breed in each split: ``per_class`` for train, a quarter of it for valid and test."""
    small = max(1, per_class // 4)
    return {"train": per_class, "valid": small, "test": small}


def _texture(breed: Breed, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] pattern the breed's coat is shaded with (1 = full fur colour, lower = darker)."""
    yy = np.arange(height, dtype=np.float32).reshape(-1, 1)
    xx = np.arange(width, dtype=np.float32).reshape(1, -1)
    if breed.texture == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(10, 18)
        phase = np.cos(angle) * xx + np.sin(angle) * yy
        return 0.55 + 0.45 * (np.sin(2 * np.pi * phase / period) > 0).astype(np.float32)
    if breed.texture == "spots":
        spots = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(spots)
        for _ in range(int(height * width / 900) + 3):
            cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(4, 9)
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=89)
        return np.asarray(spots, dtype=np.float32) / 255.0
    if breed.texture == "curls":
        period = rng.uniform(7, 11)
        return 0.65 + 0.35 * np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
    return 0.9 + 0.1 * rng.random((height, width), dtype=np.float32)


def _body_mask(breed: Breed, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Where the 'dog' is: the breed's shape, at a random place, covering roughly a third of the frame."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    body_w = rng.uniform(0.45, 0.75) * width
    body_h = rng.uniform(0.35, 0.6) * height
    left = rng.uniform(0.05, 0.95) * (width - body_w)
    top = rng.uniform(0.05, 0.95) * (height - body_h)
    box = (left, top, left + body_w, top + body_h)
    if breed.shape == "ellipse":
        draw.ellipse(box, fill=255)
    elif breed.shape == "box":
        draw.rounded_rectangle(box, radius=min(body_w, body_h) * 0.15, fill=255)
    else:
        draw.polygon(
            [(left, top + body_h), (left + body_w / 2, top), (left + body_w, top + body_h)], fill=255
        )
    head = min(body_w, body_h) * 0.35
    head_x, head_y = left + body_w - head * 0.6, top - head * 0.3
    draw.ellipse((head_x, head_y, head_x + head, head_y + head), fill=255)
    return np.asarray(mask, dtype=np.float32) / 255.0


def render_image(
    breed: Breed, rng: np.random.Generator, sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)
) -> Image.Image:
    """One synthetic photo of ``breed``: textured coloured body on a muted noisy gradient."""
    width, height = (int(side) for side in rng.integers(sides[0], sides[1] + 1, size=2))
    hue = (breed.hue + rng.uniform(-0.03, 0.03)) % 1.0
    fur = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 0.85), rng.uniform(0.6, 0.9)), dtype=np.float32)
    back_top = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.2), rng.uniform(0.3, 0.8)))
    back_bottom = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.2), rng.uniform(0.3, 0.8)))
    ramp = np.linspace(0, 1, height, dtype=np.float32).reshape(-1, 1, 1)
    background = back_top * (1 - ramp) + back_bottom * ramp + np.zeros((1, width, 1), dtype=np.float32)
    body = fur * _texture(breed, height, width, rng)[..., None]
    mask = _body_mask(breed, height, width, rng)[..., None]
    pixels = background * (1 - mask) + body * mask
    pixels += 0.03 * rng.standard_normal(size=pixels.shape, dtype=np.float32)
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8), mode="RGB")


def _image_rng(seed: int, breed_index: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, breed_index, SPLITS.index(split), index])


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=JPEG_QUALITY)


def _write_bad_files(root: Path, breeds: list[Breed], seed: int, sides: tuple[int, int]) -> list[str]:
    """Six odd files in the train split: three unusable (quarantined), three needing RGB conversion."""
    rng = np.random.default_rng([seed, 999_983])
    folder = [root / "train" / breeds[index % len(breeds)].folder for index in range(6)]
    paths = {
        "zero_byte": folder[0] / "bad_zero_byte.jpg",
        "truncated": folder[1] / "bad_truncated.jpg",
        "not_an_image": folder[2] / "bad_not_an_image.jpg",
        "cmyk": folder[3] / "odd_cmyk.jpg",
        "grey": folder[4] / "odd_greyscale.png",
        "rgba": folder[5] / "odd_rgba.png",
    }
    paths["zero_byte"].write_bytes(b"")
    _save_jpeg(render_image(breeds[1 % len(breeds)], rng, sides), paths["truncated"])
    whole = paths["truncated"].read_bytes()
    paths["truncated"].write_bytes(whole[: len(whole) // 2])
    paths["not_an_image"].write_text("This is a text file with a .jpg name, not an image.\n")
    render_image(breeds[3 % len(breeds)], rng, sides).convert("CMYK").save(
        paths["cmyk"], format="JPEG", quality=90
    )
    render_image(breeds[4 % len(breeds)], rng, sides).convert("L").save(paths["grey"], format="PNG")
    rgba = render_image(breeds[5 % len(breeds)], rng, sides).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    rgba.save(paths["rgba"], format="PNG")
    return [str(path.relative_to(root)) for path in paths.values()]


def _prepare_out_dir(root: Path) -> None:
    """Refuse to mix with someone else's files; replace only a previous sample written by this module."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise FileExistsError(
                f"{root} is not empty and was not written by 'dogpipe sample-data'; pick a new folder"
            )
        for split in SPLITS:
            shutil.rmtree(root / split, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)


def write_sample_data(
    out_dir: str | Path,
    classes: int = 5,
    per_class: int = 40,
    seed: int = 0,
    with_bad_files: bool = False,
    sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE),
) -> str:
    """Write the synthetic ImageFolder to ``out_dir`` and return a one-paragraph summary for people.

    ``sides`` bounds each image side in pixels; tests use small images to stay fast.
    """
    if not 16 <= sides[0] <= sides[1]:
        raise ValueError(f"sides must be (min, max) with 16 <= min <= max, got {sides}")
    if not 2 <= classes <= 133:
        raise ValueError(f"classes must be between 2 and 133 (dogImages has 133), got {classes}")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    root = Path(out_dir)
    _prepare_out_dir(root)
    breeds = make_breeds(classes)
    sizes = split_sizes(per_class)
    for breed_index, breed in enumerate(breeds):
        name = breed.folder.split(".", 1)[1]
        for split, count in sizes.items():
            for index in range(count):
                image = render_image(breed, _image_rng(seed, breed_index, split, index), sides)
                _save_jpeg(image, root / split / breed.folder / f"{name}_{index + 1:05d}.jpg")
    bad = _write_bad_files(root, breeds, seed, sides) if with_bad_files else []
    marker = {
        "classes": classes,
        "per_class": per_class,
        "seed": seed,
        "with_bad_files": with_bad_files,
        "sides": list(sides),
    }
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    counts = ", ".join(f"{sizes[split] * classes} {split}" for split in SPLITS)
    summary = f"Wrote {classes} breeds to {root} ({counts}; {sides[0]}-{sides[1]} px JPEGs, seed {seed})."
    if bad:
        summary += (
            f"\nAdded {len(bad)} odd files to train/ (3 unusable, 3 needing RGB conversion): "
            + ", ".join(bad)
        )
    return summary


#: How ``shifted_jpeg`` changes an in-distribution image: what a monitor should notice.
SHIFTS: tuple[str, ...] = ("none", "dark", "blur", "new_breed")


def shifted_jpeg(
    breed_index: int,
    shift: str,
    rng: np.random.Generator,
    sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE),
    new_breed_index: int = 12,
) -> bytes:
    """One JPEG of the synthetic breeds as traffic to an endpoint: ``none`` (like the training images),
    ``dark`` (pixels at 35 %), ``blur`` (Gaussian, radius 4 % of the short side) or ``new_breed`` (a
    breed the model never saw: ``new_breed_index`` in :func:`make_breeds`' order)."""
    import io

    from PIL import ImageFilter

    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}: use one of {', '.join(SHIFTS)}")
    index = new_breed_index if shift == "new_breed" else breed_index
    image = render_image(make_breeds(index + 1)[index], rng, sides)
    if shift == "dark":
        image = Image.eval(image, lambda value: int(value * 0.35))
    elif shift == "blur":
        image = image.filter(ImageFilter.GaussianBlur(radius=max(2.0, 0.04 * min(image.size))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
