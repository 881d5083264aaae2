"""A tiny trained-model directory and test images for the serving tests (no training run needed).

The model directory has what ``train.py`` writes into ``SM_MODEL_DIR``: ``model.pth`` (a state dict)
and ``model_info.json`` (architecture, num_classes, classes, image_size, mean, std). The network is an
untrained ``mobilenet_v3_small`` with calibrated batch norms and a scaled-up head, so different images
get clearly different, untied probabilities and a wrong answer cannot pass for a right one.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import torch
from PIL import Image

from training_code import models

CLASSES = [
    "001.Affenpinscher",
    "002.Afghan_hound",
    "003.Airedale_terrier",
    "004.Akita",
    "005.Alaskan_malamute",
]
IMAGE_SIZE = 64
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
ARCHITECTURE = "mobilenet_v3_small"


def write_model_dir(directory: Path, seed: int = 0) -> Path:
    """Write ``model.pth`` + ``model_info.json`` the way ``train.py`` does; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    network = models.build_model(ARCHITECTURE, len(CLASSES))
    _, head = models.find_head(network)
    with torch.no_grad():
        # Untrained batch-norm statistics collapse every image to the same features; estimating
        # them from a few random batches (as training would) makes the network tell images apart.
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # a plain average over the calibration batches
        network.train()
        for _ in range(3):
            network(torch.rand(8, 3, IMAGE_SIZE, IMAGE_SIZE) * 4 - 2)
        network.eval()
        head.weight.mul_(4.0)
    torch.save(network.state_dict(), directory / models.MODEL_WEIGHTS_FILE)
    info = {
        "architecture": ARCHITECTURE,
        "num_classes": len(CLASSES),
        "classes": CLASSES,
        "image_size": IMAGE_SIZE,
        "mean": MEAN,
        "std": STD,
    }
    (directory / models.MODEL_INFO_FILE).write_text(json.dumps(info, indent=2))
    return directory


def image_bytes(color: tuple[int, int, int], size: tuple[int, int] = (80, 60), fmt: str = "JPEG") -> bytes:
    """A small image with a colour gradient (so resizing and cropping matter), encoded as ``fmt``."""
    image = Image.new("RGB", size, color)
    pixels = image.load()
    for x in range(size[0]):
        for y in range(0, size[1], 3):
            pixels[x, y] = ((color[0] + 3 * x) % 256, (color[1] + 5 * y) % 256, color[2])
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims ``width`` x ``height`` pixels but that carries almost
    no data: what a decompression bomb looks like before it is decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
