"""Decoded images kept across epochs, within a memory budget.

Train decodes the same files every epoch; at dogImages scale on 2 cores that decoding (JPEG decode and
resize, in the loader's thread beside the training step) held a step a third of its time (``bench/
train_phases_bench.py``). Kept after the first epoch, the decoded, resized uint8 image is what the next
epoch would have computed again, bit for bit, so caching changes no batch: augmentation still crops
and flips it with the epoch's own random numbers. Images past the budget are decoded each time.

A centre crop is a view into its whole resized image (a 4:3 photo's is 1.33x the crop), so the cache
keeps a compact copy of such a view, in the same dimension order: the budget then counts what stays in
memory, and the whole image is freed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

import torch

MIB = 1 << 20


def compact(image: torch.Tensor) -> torch.Tensor:
    """``image`` when its storage holds only its own elements, else a copy of just them with the same
    dimension order (a channels-last view stays channels-last, so reading it costs what it did)."""
    if image.untyped_storage().nbytes() == image.numel() * image.element_size():
        return image
    order = sorted(range(image.dim()), key=lambda dim: -image.stride(dim))  # outermost first
    inverse = sorted(range(image.dim()), key=order.__getitem__)
    return image.permute(order).contiguous().permute(inverse)


class ImageCache:
    """``key -> uint8 tensor``, filled by :meth:`get` until ``budget_bytes`` are used; safe across the
    loader's threads, and shared by a job's loaders (keys name the file and what was made of it).
    Callers must not modify a returned tensor in place (the loader copies it into the batch)."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._images: dict[Hashable, torch.Tensor] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The image kept for ``key``, else ``make()``, kept (:func:`compact`) if it fits in what is left."""
        image = self._images.get(key)
        if image is not None:
            return image
        image = make()
        size = image.numel() * image.element_size()
        if self.used_bytes + size <= self.budget_bytes:
            image = compact(image)
            with self._lock:
                if key not in self._images and self.used_bytes + size <= self.budget_bytes:
                    self._images[key] = image
                    self.used_bytes += size
        return image

    def __len__(self) -> int:
        return len(self._images)
