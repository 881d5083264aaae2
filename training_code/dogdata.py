"""Images in, tensors out: decoding, ImageFolder scanning, ``torchdata.nodes`` loaders.

Every script that touches pixels (preprocess, train, evaluate, inference) goes through ``decode_image``,
so the model sees the same pixels in training and in serving.

Geometry (one rule everywhere): the short side is resized to ``image_size`` (bilinear, antialiased) and
the centre ``image_size`` x ``image_size`` square is cropped. Training augmentation instead resizes the
short side to ``AUGMENT_SCALE * image_size``, takes a random square crop and a random horizontal flip.

Decoding: RGB JPEGs go through ``torchvision.io.decode_jpeg`` (libjpeg-turbo, about 2x faster than PIL
once resizing is included). JPEGs at least ``DRAFT_FACTOR`` times larger than needed go through PIL's
``draft()``, which decodes at 1/2, 1/4 or 1/8 scale inside libjpeg (3x faster on 1000-2000 px photos).
Everything else (PNG, grey, CMYK, palette, alpha) goes through PIL and ``to_rgb``.

The normalisation stats these loaders apply are computed by ``pixel_stats.py`` and read by
``read_stats``.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchdata.nodes as tn
import torchvision.transforms.v2.functional as F
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_jpeg

if __package__:  # imported as training_code.dogdata (tests)
    from .image_cache import ImageCache
    from .thread_map import map_node
else:  # in the containers, beside image_cache.py
    from image_cache import ImageCache  # type: ignore[no-redef]
    from thread_map import map_node  # type: ignore[no-redef]

# fmt: off
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff",
                                     ".webp")
# fmt: on
STATS_FILE = "stats.json"
CLASSES_FILE = "classes.json"
AUGMENT_SCALE = 1.15
DRAFT_FACTOR = 2
JPEG_MAGIC = b"\xff\xd8\xff"
ALPHA_BACKGROUND = (255, 255, 255)

Sample = tuple[str, int]

# torchvision 0.29 warns on every decode_jpeg call that its decoders will move to TorchCodec; the
# pinned torchvision keeps them, and one warning per image would bury real warnings in the logs.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")


class ImageDecodeError(ValueError):
    """A file or payload is not a decodable image; the message names it and says why."""


# --------------------------------------------------------------------------------------------- decoding


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited over white rather than dropped.

    Dropping alpha would expose whatever colour hides under transparent pixels (often black), which
    differs between encoders; white is what a viewer shows.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit or float grey: scale to 8 bit instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size and array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def _read_source(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    name = os.fspath(source)
    try:
        with open(name, "rb") as handle:
            return handle.read(), name
    except OSError as error:
        raise ImageDecodeError(f"cannot read image {name}: {error.strerror}") from None


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """CHW view of a writable HWC copy: one copy of the pixels. The resize reads channels-last uint8
    directly (its AVX2 path wants it), so a contiguous CHW copy here only cost time: 0.26 ms of a
    draft-decoded photo's ~1.9 ms (2026-12-07); the resized pixels are the same bit for bit (tested)."""
    return torch.from_numpy(np.array(to_rgb(image), dtype=np.uint8)).permute(2, 0, 1)


def _decode(data: bytes, name: str, short_side: int | None) -> torch.Tensor:
    """Decode to uint8 CHW RGB at full size (or, via ``draft``, at least ``short_side``)."""
    if not data:
        raise ImageDecodeError(f"cannot decode image {name}: empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))  # lazy: reads only the header
        if image.format == "JPEG":
            large = short_side is not None and min(image.size) >= DRAFT_FACTOR * short_side
            if image.mode == "RGB" and not large:
                try:
                    return decode_jpeg(
                        torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
                    )
                except RuntimeError:
                    pass  # a JPEG libjpeg-turbo refuses (e.g. truncated): let PIL judge it below
            if large:
                image.draft("RGB", (short_side, short_side))
        image.load()
        return _pil_to_tensor(image)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"cannot decode image {name}: not a recognised image format") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"cannot decode image {name}: {error}") from None


def resize_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the short side is ``size`` pixels (bilinear, antialiased), keeping the aspect ratio."""
    if min(image.shape[-2:]) == size:
        return image
    return F.resize(image, [size], antialias=True)


def resize_center_crop(image: torch.Tensor, image_size: int) -> torch.Tensor:
    """The evaluation geometry: short side to ``image_size``, then the centre square."""
    return F.center_crop(resize_short_side(image, image_size), [image_size, image_size])


def decode_image(source: str | os.PathLike[str] | bytes, image_size: int | None = None) -> torch.Tensor:
    """Decode a file or bytes to a uint8 CHW RGB tensor, resized and centre-cropped to ``image_size``.

    ``image_size=None`` returns the full-size image. Raises ``ImageDecodeError`` naming the source.
    """
    data, name = _read_source(source)
    image = _decode(data, name, image_size)
    return image if image_size is None else resize_center_crop(image, image_size)


def augment_base(source: str | os.PathLike[str] | bytes, image_size: int) -> torch.Tensor:
    """What augmentation crops from: the image with its short side at ``AUGMENT_SCALE * image_size``."""
    data, name = _read_source(source)
    scaled = math.ceil(AUGMENT_SCALE * image_size)
    return resize_short_side(_decode(data, name, scaled), scaled)


def random_crop_flip(image: torch.Tensor, image_size: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``image_size`` square of ``image`` (from :func:`augment_base`), flipped with p=0.5."""
    height, width = image.shape[-2:]
    top = int(torch.randint(0, height - image_size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - image_size + 1, (1,), generator=generator))
    image = image[:, top : top + image_size, left : left + image_size]
    if bool(torch.rand((), generator=generator) < 0.5):
        image = image.flip(-1)
    return image.contiguous()


# --------------------------------------------------------------------------------------------- folders


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def list_classes(split_dir: str | os.PathLike[str]) -> list[str]:
    """Class folder names of a split, sorted (hidden folders skipped), as ``ImageFolder`` orders them."""
    root = Path(split_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"split folder not found: {root}")
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def scan_split(split_dir: str | os.PathLike[str]) -> tuple[list[str], list[Sample]]:
    """Scan an ImageFolder split: ``(classes, [(path, label), ...])``, both sorted like ``ImageFolder``.

    Files are found recursively inside each class folder and kept when their extension is an image one.
    """
    classes = list_classes(split_dir)
    if not classes:
        raise FileNotFoundError(f"no class folders in {split_dir}")
    samples: list[Sample] = []
    for label, name in enumerate(classes):
        for folder, dirs, files in sorted(os.walk(Path(split_dir) / name, followlinks=True)):
            dirs.sort()
            samples += [(os.path.join(folder, file), label) for file in sorted(files) if is_image_file(file)]
    return classes, samples


def read_classes(stats_dir: str | os.PathLike[str]) -> list[str]:
    """The class names, in label order, from ``classes.json`` written by ``preprocess.py``."""
    path = Path(stats_dir) / CLASSES_FILE
    value = _read_json(path)
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{path}: expected a non-empty JSON list of class names")
    return value


def read_stats(stats_dir: str | os.PathLike[str]) -> tuple[list[float], list[float]]:
    """Per-channel ``(mean, std)`` of ``x / 255`` from ``stats.json`` written by ``preprocess.py``."""
    path = Path(stats_dir) / STATS_FILE
    value = _read_json(path)
    try:
        mean = [float(item) for item in value["mean"]]
        std = [float(item) for item in value["std"]]
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{path}: expected {{'mean': [3 numbers], 'std': [3 numbers]}}") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"{path}: mean and std need 3 channels each and std > 0, got {mean} / {std}")
    return mean, std


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found (written by preprocess.py)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None


# --------------------------------------------------------------------------------------------- loaders


def shard_indices(
    num_samples: int, *, shuffle: bool, seed: int, epoch: int, rank: int, world_size: int, equal: bool
) -> list[int]:
    """This rank's sample indices for one epoch.

    Shuffling uses ``seed + epoch`` so every rank draws the same permutation, then rank ``r`` takes
    every ``world_size``-th index from ``r``. With ``equal`` the permutation is padded by wrapping around
    (as ``DistributedSampler`` does) so all ranks run the same number of steps, which DDP needs; without
    it the shards are disjoint and together hold every sample exactly once, which evaluation needs.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    if shuffle:
        generator = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(num_samples, generator=generator).tolist()
    else:
        order = list(range(num_samples))
    if equal and world_size > 1 and num_samples:
        total = math.ceil(num_samples / world_size) * world_size
        order = (order * math.ceil(total / num_samples))[:total]
    return order[rank::world_size]


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2**63)


class ImageFolderLoader:
    """Batches of ``(float32 NCHW normalised, int64 labels)`` from a list of samples.

    Built on ``torchdata.nodes``: decoding runs in ``num_workers`` threads (``ParallelMapper``; decoding
    and resizing release the GIL, and threads measured faster than processes here), in order, so a fixed
    seed gives the same batches. Call ``set_epoch`` before each epoch to reshuffle. Decoded images are
    kept across epochs in ``cache`` (``image_cache.py``): the same batches, without decoding the same
    files again.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        num_workers: int = 0,
        augment: bool = False,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool | None = None,
        cache: ImageCache | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.samples = list(samples)
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.augment = augment
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.equal_shards = shuffle if equal_shards is None else equal_shards
        self.cache = cache if cache is not None else ImageCache(0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose shuffle order and augmentation the next iteration uses."""
        self.epoch = epoch

    def indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, in batch order."""
        return shard_indices(
            len(self.samples),
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
            rank=self.rank,
            world_size=self.world_size,
            equal=self.equal_shards,
        )

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (before ``drop_last``)."""
        return len(self.indices())

    def __len__(self) -> int:
        count = self.num_samples
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        if self.augment:
            base = self.cache.get((path, "augment"), lambda: augment_base(path, self.image_size))
            generator = torch.Generator().manual_seed(_sample_seed(self.seed, self.epoch, index))
            return random_crop_flip(base, self.image_size, generator), label
        return self.cache.get((path, "centre"), lambda: decode_image(path, self.image_size)), label

    def _collate(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = normalize(torch.stack([image for image, _ in batch]), self.mean, self.std)
        labels = torch.tensor([label for _, label in batch], dtype=torch.int64)
        return images, labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        node = map_node(tn.IterableWrapper(self.indices()), self._load, self.num_workers)
        node = tn.Batcher(node, batch_size=self.batch_size, drop_last=self.drop_last)
        node = tn.Mapper(node, self._collate)
        return iter(tn.Loader(node))


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``N x 3 x S x S`` → float32 ``(x / 255 - mean) / std`` with per-channel ``3 x 1 x 1`` mean
    and std: the one normalisation of training, evaluation and serving (the serving module traces it)."""
    return images.to(torch.float32).div(255.0).sub(mean).div(std)


def make_loader(
    split_dir: str | os.PathLike[str],
    classes: Sequence[str],
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    **options: Any,
) -> ImageFolderLoader:
    """A loader over an ImageFolder split whose labels follow ``classes`` (from ``classes.json``);
    ``options`` are :class:`ImageFolderLoader`'s.

    A class folder that ``classes`` does not know is an error (its label would be wrong); a class with
    no folder in this split is allowed (a small test split may lack one). ``equal_shards`` defaults to
    ``shuffle``: training shards are padded to equal length for DDP, evaluation shards are disjoint and
    cover every sample exactly once. ``drop_last`` is off by default so no evaluation sample is lost.
    """
    split_classes, split_samples = scan_split(split_dir)
    unknown = sorted(set(split_classes) - set(classes))
    if unknown:
        raise ValueError(f"{split_dir}: class folders not in classes.json: {', '.join(unknown)}")
    label_of = {name: index for index, name in enumerate(classes)}
    samples = [(path, label_of[split_classes[label]]) for path, label in split_samples]
    return ImageFolderLoader(samples, image_size, mean, std, **options)
