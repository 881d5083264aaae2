"""Normalisation stats in forked workers: the same bits as in threads, really in other processes (the
caller being one of them), and a worker's error raised in the caller after every worker ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from training_code import dogdata, pixel_stats

pytestmark = pytest.mark.skipif(
    "fork" not in torch.multiprocessing.get_all_start_methods(), reason="process workers need fork"
)


def _recording_pids(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Make every histogram append the pid that computed it to ``log`` (forked workers inherit this),
    each taking at least 5 ms, so a worker forked a few ms late still finds chunks left."""
    original = pixel_stats.dogdata.decode_image

    def recorded(path: str, image_size: int) -> torch.Tensor:
        with log.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.005)
        return original(path, image_size)

    monkeypatch.setattr(pixel_stats.dogdata, "decode_image", recorded)


def test_process_workers_give_exactly_the_thread_result(
    sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "train")
    paths = [path for path, _ in samples]
    monkeypatch.setattr(pixel_stats, "PROCESS_CHUNK", 3)  # several chunks over two workers
    threads = pixel_stats.compute_stats(paths, 40, num_workers=2, processes=False)
    _recording_pids(monkeypatch, tmp_path / "pids")
    done: list[int] = []
    processes = pixel_stats.compute_stats(paths, 40, num_workers=2, processes=True, on_done=done.append)
    assert processes == threads  # bit for bit: integer histograms do not depend on who counted what
    assert sum(done) == len(paths) and len(done) == -(-len(paths) // 3)
    pids = set((tmp_path / "pids").read_text().split())
    assert str(os.getpid()) in pids and len(pids) == 2  # this process and one forked worker


def test_large_splits_use_processes_small_ones_threads(
    sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "valid")
    paths = [path for path, _ in samples]
    _recording_pids(monkeypatch, tmp_path / "small")
    pixel_stats.compute_stats(paths, 24, num_workers=2)
    assert set((tmp_path / "small").read_text().split()) == {str(os.getpid())}
    monkeypatch.setattr(pixel_stats, "PROCESS_MIN_IMAGES", len(paths))
    _recording_pids(monkeypatch, tmp_path / "large")
    pixel_stats.compute_stats(paths, 24, num_workers=2)
    assert len(set((tmp_path / "large").read_text().split())) == 2
    _recording_pids(monkeypatch, tmp_path / "one")
    pixel_stats.compute_stats(paths, 24, num_workers=1)  # one worker: no process to gain
    assert set((tmp_path / "one").read_text().split()) == {str(os.getpid())}


def test_a_failing_worker_is_raised_with_its_error_after_every_worker_ended(
    sample_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, samples = dogdata.scan_split(sample_dataset / "train")
    paths = [path for path, _ in samples]
    caller = os.getpid()
    original = pixel_stats.dogdata.decode_image
    worker = tmp_path / "worker"

    def failing_elsewhere(path: str, image_size: int) -> torch.Tensor:
        time.sleep(0.005)
        if os.getpid() != caller:
            worker.write_text(str(os.getpid()))
            raise dogdata.ImageDecodeError(f"cannot decode {Path(path).name}")
        return original(path, image_size)

    monkeypatch.setattr(pixel_stats.dogdata, "decode_image", failing_elsewhere)
    failed = pixel_stats.forked_sums.WorkerFailed
    with pytest.raises(failed, match=r"ImageDecodeError: cannot decode .*\.jpg"):
        pixel_stats.compute_stats(paths, 24, num_workers=2, processes=True)
    with pytest.raises(ChildProcessError):  # the worker was waited for: not running, not a zombie
        os.waitpid(int(worker.read_text()), os.WNOHANG)


@pytest.mark.parametrize("layout", ["landscape crop", "portrait crop", "contiguous CHW", "one pixel"])
def test_image_histogram_counts_exactly_what_bincount_counts(layout: str) -> None:
    """PIL's histogram reads the crop's rows in place through their stride: the counts must be
    ``torch.bincount``'s per channel, whatever the layout."""
    generator = torch.Generator().manual_seed(7)
    hwc = torch.randint(0, 256, (60, 90, 3), dtype=torch.uint8, generator=generator)
    image = {
        "landscape crop": hwc.permute(2, 0, 1)[:, 5:45, 17:57],
        "portrait crop": hwc.permute(2, 0, 1)[:, 3:58, :40],
        "contiguous CHW": hwc.permute(2, 0, 1)[:, 10:30, 20:50].contiguous(),
        "one pixel": hwc.permute(2, 0, 1)[:, 59:, 89:],
    }[layout]
    expected = torch.cat([torch.bincount(channel.flatten(), minlength=256) for channel in image])
    assert pixel_stats.image_histogram(image) == expected.tolist()


def test_images_histogram_in_batches_counts_what_each_image_counts() -> None:
    """Crops copied side by side and counted at once: the sum of each image's own counts, across
    batch boundaries, a short last batch, and images of another size (which start a new batch)."""
    generator = torch.Generator().manual_seed(11)
    photos = [torch.randint(0, 256, (50, 70, 3), dtype=torch.uint8, generator=generator) for _ in range(8)]
    images = [photo.permute(2, 0, 1)[:, 3:43, 15:55] for photo in photos[:5]]  # strided 40 px crops
    images += [photos[5].permute(2, 0, 1)[:, :30, :20].contiguous(), photos[6].permute(2, 0, 1)[:, 1:41, :40]]
    images.append(photos[7].permute(2, 0, 1)[:, 5:45, 20:60])
    expected = sum(torch.tensor(pixel_stats.image_histogram(image)) for image in images)
    assert isinstance(expected, torch.Tensor)
    for batch in (1, 3, 16):
        assert pixel_stats.images_histogram(images, batch=batch).tolist() == expected.tolist()
    assert pixel_stats.images_histogram([]).tolist() == [0] * 768
