"""dogdata: decoding to RGB, ImageFolder scanning, loaders that lose no sample, exact stats."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training_code import dogdata, pixel_stats
from training_code.image_cache import ImageCache


def jpeg_bytes(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# --------------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("RGB", "JPEG"),
        ("L", "JPEG"),
        ("CMYK", "JPEG"),
        ("RGBA", "PNG"),
        ("P", "PNG"),
        ("LA", "PNG"),
        ("I;16", "PNG"),
    ],
)
def test_every_mode_decodes_to_rgb_at_the_requested_size(mode: str, fmt: str) -> None:
    image = noise_image(120, 80).convert(mode)
    tensor = dogdata.decode_image(jpeg_bytes(image, fmt), 48)
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (3, 48, 48)


def test_full_size_decode_matches_pil_pixels() -> None:
    image = noise_image(70, 50)
    tensor = dogdata.decode_image(jpeg_bytes(image, "PNG"))
    assert torch.equal(tensor, torch.from_numpy(np.array(image)).permute(2, 0, 1))


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (32, 32), (10, 200, 30, 0))
    assert int(dogdata.decode_image(jpeg_bytes(image, "PNG")).min()) == 255


def test_center_crop_keeps_the_middle_of_a_wide_image() -> None:
    array = np.zeros((40, 120, 3), dtype=np.uint8)
    array[:, 40:80] = 255  # a white middle third
    tensor = dogdata.decode_image(jpeg_bytes(Image.fromarray(array), "PNG"), 40)
    assert tuple(tensor.shape) == (3, 40, 40) and int(tensor.min()) == 255


def test_large_jpeg_draft_path_agrees_with_full_decode() -> None:
    smooth = Image.linear_gradient("L").resize((800, 600)).convert("RGB")
    data = jpeg_bytes(smooth)
    fast = dogdata.decode_image(data, 64).float()
    reference = dogdata.resize_center_crop(dogdata.decode_image(data), 64).float()
    assert (fast - reference).abs().mean() < 2.0


@pytest.mark.parametrize(("size", "fmt"), [((800, 600), "JPEG"), ((600, 900), "JPEG"), ((130, 90), "PNG")])
def test_pil_decoded_pixels_resize_as_a_contiguous_copy_would(size: tuple[int, int], fmt: str) -> None:
    """PIL-decoded images (draft JPEGs, PNGs) reach the resize as a channels-last view, not a
    contiguous CHW copy: the resized pixels must be the same bit for bit."""
    image = noise_image(*size, seed=3)
    data = jpeg_bytes(image, fmt)
    opened = Image.open(io.BytesIO(data))
    if fmt == "JPEG":
        opened.draft("RGB", (64, 64))  # what decode_image does with a JPEG this large
    contiguous = torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1).contiguous()
    assert torch.equal(dogdata.decode_image(data, 64), dogdata.resize_center_crop(contiguous, 64))


@pytest.mark.parametrize("payload", [b"", b"hello, not an image", jpeg_bytes(noise_image(64, 64))[:300]])
def test_undecodable_input_raises_a_named_error(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(payload)
    with pytest.raises(dogdata.ImageDecodeError, match=r"broken\.jpg"):
        dogdata.decode_image(path, 32)


def test_missing_file_raises_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(dogdata.ImageDecodeError, match=r"nope\.jpg"):
        dogdata.decode_image(tmp_path / "nope.jpg")


# --------------------------------------------------------------------------------------------- folders


def test_scan_split_follows_imagefolder_order(tmp_path: Path) -> None:
    for name in ("b_dog", "a_dog"):
        (tmp_path / name / "nested").mkdir(parents=True)
        (tmp_path / name / "2.JPG").write_bytes(b"x")
        (tmp_path / name / "nested" / "1.png").write_bytes(b"x")
        (tmp_path / name / "notes.txt").write_text("skip me")
    (tmp_path / ".hidden").mkdir()
    classes, samples = dogdata.scan_split(tmp_path)
    assert classes == ["a_dog", "b_dog"]
    assert [(Path(path).relative_to(tmp_path).as_posix(), label) for path, label in samples] == [
        ("a_dog/2.JPG", 0),
        ("a_dog/nested/1.png", 0),
        ("b_dog/2.JPG", 1),
        ("b_dog/nested/1.png", 1),
    ]


def test_read_stats_and_classes_validate(tmp_path: Path) -> None:
    (tmp_path / "stats.json").write_text(json.dumps({"mean": [0.1, 0.2, 0.3], "std": [0.2, 0.2, 0.2]}))
    (tmp_path / "classes.json").write_text(json.dumps(["a", "b"]))
    assert dogdata.read_stats(tmp_path) == ([0.1, 0.2, 0.3], [0.2, 0.2, 0.2])
    assert dogdata.read_classes(tmp_path) == ["a", "b"]
    (tmp_path / "stats.json").write_text(json.dumps({"mean": [0.1, 0.2], "std": [0.2, 0.2, 0.2]}))
    with pytest.raises(ValueError, match="3 channels"):
        dogdata.read_stats(tmp_path)
    (tmp_path / "classes.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"classes\.json"):
        dogdata.read_classes(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"stats\.json"):
        dogdata.read_stats(tmp_path / "missing")


# --------------------------------------------------------------------------------------------- loaders

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


def reference_batch(paths: list[str], size: int) -> torch.Tensor:
    images = torch.stack([dogdata.decode_image(path, size) for path in paths]).double() / 255
    return (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def as_pixels(normalised: torch.Tensor) -> bytes:
    """Undo the normalisation back to uint8 pixels, an identity that ignores float rounding."""
    pixels = (normalised.double() * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)) * 255
    return pixels.round().to(torch.uint8).numpy().tobytes()


def collect(loader: dogdata.ImageFolderLoader) -> tuple[torch.Tensor, torch.Tensor, int]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]), len(batches)


def test_eval_loader_yields_every_sample_once_normalised(sample_dataset: Path) -> None:
    classes, samples = dogdata.scan_split(sample_dataset / "valid")
    loader = dogdata.make_loader(
        sample_dataset / "valid", classes, 32, MEAN, STD, batch_size=5, shuffle=False, num_workers=2
    )
    images, labels, count = collect(loader)
    assert len(samples) == 16 and count == len(loader) == 4  # 5 + 5 + 5 + 1: the partial batch is kept
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert labels.tolist() == [label for _, label in samples]
    expected = reference_batch([path for path, _ in samples], 32)
    assert torch.allclose(images.double(), expected, atol=1e-5)


def test_two_rank_shards_cover_every_eval_sample_exactly_once(sample_dataset: Path) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "test")
    samples = samples[:-1]  # an odd count, so the shards differ in size
    seen: Counter[bytes] = Counter()
    for rank in (0, 1):
        loader = dogdata.ImageFolderLoader(
            samples, 24, MEAN, STD, batch_size=4, shuffle=False, num_workers=1, rank=rank, world_size=2
        )
        images, _, count = collect(loader)
        assert count == len(loader)
        seen.update(as_pixels(image) for image in images)
    reference = reference_batch([path for path, _ in samples], 24)
    assert sorted(seen.values()) == [1] * len(samples)
    assert Counter(as_pixels(image) for image in reference) == seen


def test_training_shards_are_equal_and_reshuffle_per_epoch(sample_dataset: Path) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "train")
    samples = samples[:-1]  # 63 samples over 2 ranks: padded to 32 each
    ranks = [
        dogdata.ImageFolderLoader(
            samples, 16, MEAN, STD, batch_size=8, shuffle=True, seed=7, rank=r, world_size=2
        )
        for r in (0, 1)
    ]
    assert [loader.num_samples for loader in ranks] == [32, 32] and [len(loader) for loader in ranks] == [
        4,
        4,
    ]
    assert set(ranks[0].indices()) | set(ranks[1].indices()) == set(range(len(samples)))
    first = ranks[0].indices()
    ranks[0].set_epoch(1)
    assert ranks[0].indices() != first
    ranks[0].set_epoch(0)
    assert ranks[0].indices() == first


def test_augmented_batches_are_reproducible_and_vary_by_epoch(sample_dataset: Path) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "valid")

    def first_batch(epoch: int) -> torch.Tensor:
        loader = dogdata.ImageFolderLoader(
            samples[:4], 32, MEAN, STD, batch_size=4, shuffle=False, augment=True, seed=1
        )
        loader.set_epoch(epoch)
        return next(iter(loader))[0]

    assert first_batch(0).shape == (4, 3, 32, 32)
    assert torch.equal(first_batch(0), first_batch(0))
    assert not torch.equal(first_batch(0), first_batch(1))


def _epochs(loader: dogdata.ImageFolderLoader, epochs: int) -> list[torch.Tensor]:
    batches = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        batches.extend(images for images, _ in loader)
    return batches


@pytest.mark.parametrize("augment", [True, False])
def test_cached_epochs_give_the_same_batches_without_reading_the_files_again(
    sample_dataset: Path, tmp_path: Path, augment: bool
) -> None:
    """Epoch 2 from the cache equals epoch 2 decoded again, bit for bit; the files are gone by then."""
    copy = tmp_path / "split"
    shutil.copytree(sample_dataset / "valid", copy)
    _, samples = dogdata.scan_split(copy)
    options = {"batch_size": 4, "shuffle": True, "augment": augment, "seed": 3, "num_workers": 2}
    plain = dogdata.ImageFolderLoader(samples, 24, MEAN, STD, **options)
    cached = dogdata.ImageFolderLoader(samples, 24, MEAN, STD, cache=ImageCache(64 * 2**20), **options)
    expected = _epochs(plain, 2)
    got = _epochs(cached, 1)
    assert len(cached.cache) == len(samples)
    shutil.rmtree(copy)
    cached.set_epoch(1)
    got.extend(images for images, _ in cached)
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    with pytest.raises(Exception, match=r"No such file|not found|cannot"):
        _epochs(plain, 1)


def test_the_cache_keeps_no_more_than_its_budget(sample_dataset: Path) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "valid")
    one_image = 3 * 24 * 24
    loader = dogdata.ImageFolderLoader(samples, 24, MEAN, STD, batch_size=4, shuffle=False,
                                       cache=ImageCache(3 * one_image + 1))  # fmt: skip
    _epochs(loader, 2)
    assert len(loader.cache) == 3 and loader.cache.used_bytes == 3 * one_image


def test_the_cache_keeps_a_centre_crop_without_the_image_it_was_cut_from(tmp_path: Path) -> None:
    """A landscape photo's crop is a view into its whole resize; the cache keeps only the crop's bytes,
    the same pixels in the same (channels-last) order, and a compact image as it is."""
    photo = tmp_path / "wide.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(photo)
    crop = dogdata.decode_image(photo, 24)
    assert crop.untyped_storage().nbytes() > crop.numel()  # the view this is about
    cache = ImageCache(2**20)
    kept = cache.get("crop", lambda: crop)
    assert torch.equal(kept, crop) and kept.stride() == (1, 24 * 3, 3)
    assert kept.untyped_storage().nbytes() == kept.numel() == cache.used_bytes == 3 * 24 * 24
    assert cache.get("crop", lambda: pytest.fail("made again")) is kept
    dense = torch.zeros(3, 24, 24, dtype=torch.uint8)
    assert cache.get("dense", lambda: dense) is dense


def test_loader_threads_leave_the_training_thread_its_intra_op_threads(sample_dataset: Path) -> None:
    """Loader threads decode on one torch thread each; the thread that trains keeps its own count."""
    _, samples = dogdata.scan_split(sample_dataset / "valid")
    before = torch.get_num_threads()
    seen: list[int] = []
    loader = dogdata.ImageFolderLoader(samples[:4], 24, MEAN, STD, batch_size=2, shuffle=False, num_workers=2)
    load = loader._load
    loader._load = lambda index: (seen.append(torch.get_num_threads()), load(index))[1]  # type: ignore[method-assign]
    _epochs(loader, 1)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_drop_last_drops_only_the_partial_batch(sample_dataset: Path) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "valid")
    loader = dogdata.ImageFolderLoader(samples, 16, MEAN, STD, batch_size=5, shuffle=False, drop_last=True)
    _, labels, count = collect(loader)
    assert count == len(loader) == 3 and len(labels) == 15


def test_loader_rejects_class_folders_it_does_not_know(sample_dataset: Path) -> None:
    classes, _ = dogdata.scan_split(sample_dataset / "valid")
    with pytest.raises(ValueError, match=classes[-1]):
        dogdata.make_loader(
            sample_dataset / "valid", classes[:-1], 16, MEAN, STD, batch_size=4, shuffle=False
        )


def test_loader_labels_follow_the_given_class_order(sample_dataset: Path) -> None:
    classes, samples = dogdata.scan_split(sample_dataset / "valid")
    reordered = list(reversed(classes))
    loader = dogdata.make_loader(
        sample_dataset / "valid", reordered, 16, MEAN, STD, batch_size=64, shuffle=False
    )
    _, labels, _ = collect(loader)
    assert labels.tolist() == [len(classes) - 1 - label for _, label in samples]


def test_loader_error_names_the_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.jpg").write_bytes(b"garbage")
    loader = dogdata.make_loader(tmp_path, ["a"], 16, MEAN, STD, batch_size=2, shuffle=False, num_workers=1)
    with pytest.raises(Exception, match=r"bad\.jpg"):
        list(loader)


# --------------------------------------------------------------------------------------------- stats


def two_pass_reference(paths: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate(
        [
            dogdata.decode_image(path, size).numpy().reshape(3, -1).astype(np.float64) / 255.0
            for path in paths
        ],
        axis=1,
    )
    mean = pixels.sum(axis=1) / pixels.shape[1]
    std = np.sqrt(((pixels - mean[:, None]) ** 2).sum(axis=1) / pixels.shape[1])
    return mean, std


def test_stats_are_exact_against_a_two_pass_float64_reference(sample_dataset: Path) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "train")
    paths = [path for path, _ in samples]
    mean, std, n_pixels = pixel_stats.compute_stats(paths, 40, num_workers=2)
    ref_mean, ref_std = two_pass_reference(paths, 40)
    assert n_pixels == len(paths) * 40 * 40
    assert np.abs(np.array(mean) - ref_mean).max() < 1e-9
    assert np.abs(np.array(std) - ref_std).max() < 1e-9
    assert np.abs(np.array(std) - ref_std).max() < 1e-6  # the documented promise


def test_stats_restore_torch_threads(sample_dataset: Path) -> None:
    before = torch.get_num_threads()
    _, samples = dogdata.scan_split(sample_dataset / "valid")
    pixel_stats.compute_stats([path for path, _ in samples[:2]], 16, num_workers=0)
    assert torch.get_num_threads() == before
