"""preprocess.py: quarantine without touching the source, class checks, zip input, deterministic output."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from pipeline.sample_data import write_sample_data
from training_code import dogdata, pixel_stats, preprocess


def tree_digest(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run_main(input_dir: Path, out: Path, *extra: str) -> int:
    argv = [
        "--input-dir",
        str(input_dir),
        "--output-dir",
        str(out / "data"),
        "--stats-dir",
        str(out / "stats"),
    ]
    return preprocess.main([*argv, "--image-size", "32", "--num-workers", "2", *extra])


@pytest.fixture(scope="module")
def dirty_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dirty") / "images"
    write_sample_data(root, classes=3, per_class=4, seed=5, with_bad_files=True, sides=(40, 64))
    return root


def test_bad_files_are_quarantined_odd_ones_converted_and_source_untouched(
    dirty_dataset: Path, tmp_path: Path
) -> None:
    before = tree_digest(dirty_dataset)
    assert run_main(dirty_dataset, tmp_path) == 0
    assert tree_digest(dirty_dataset) == before

    quarantine = json.loads((tmp_path / "stats" / "quarantine.json").read_text())
    reasons = {Path(item["path"]).name: item["reason"] for item in quarantine}
    assert set(reasons) == {"bad_zero_byte.jpg", "bad_truncated.jpg", "bad_not_an_image.jpg"}
    assert "0 bytes" in reasons["bad_zero_byte.jpg"]
    assert "truncated" in reasons["bad_truncated.jpg"]
    assert "not an image" in reasons["bad_not_an_image.jpg"]

    manifest = json.loads((tmp_path / "stats" / "manifest.json").read_text())
    train_files = manifest["splits"]["train"]["files"]
    converted = sorted(Path(item["path"]).name for item in train_files if item["converted"])
    assert converted == ["odd_cmyk.jpg", "odd_greyscale.png", "odd_rgba.png"]
    for item in train_files:
        path = tmp_path / "data" / item["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["sha256"]
        with Image.open(path) as image:
            assert image.mode == "RGB"
    assert sum(manifest["splits"]["train"]["counts"].values()) == 3 * 4 + 3 == len(train_files)
    assert not any("bad_" in path for path in tree_digest(tmp_path / "data"))


def test_outputs_match_the_contract_and_stats_are_exact(
    preprocessed_dataset: Path, sample_dataset: Path
) -> None:
    stats = json.loads((preprocessed_dataset / "stats" / "stats.json").read_text())
    classes = json.loads((preprocessed_dataset / "stats" / "classes.json").read_text())
    assert classes == dogdata.scan_split(sample_dataset / "train")[0]
    assert set(stats) == {"mean", "std", "image_size", "num_images", "num_pixels"}
    _, train = dogdata.scan_split(preprocessed_dataset / "data" / "train")
    assert stats["num_images"] == len(train) == 64 and stats["num_pixels"] == 64 * 32 * 32
    mean, std, _ = pixel_stats.compute_stats([path for path, _ in train], 32, num_workers=0)
    assert stats["mean"] == pytest.approx(mean, abs=1e-12) and stats["std"] == pytest.approx(std, abs=1e-12)
    # copied as-is: the clean data set holds the very bytes of the (already clean) source
    assert tree_digest(preprocessed_dataset / "data") == {
        k: v for k, v in tree_digest(sample_dataset).items() if not k.startswith(".")
    }


def test_rerun_gives_identical_outputs(
    sample_dataset: Path, preprocessed_dataset: Path, tmp_path: Path
) -> None:
    assert run_main(sample_dataset, tmp_path) == 0
    assert tree_digest(tmp_path) == tree_digest(preprocessed_dataset)


def test_zip_with_a_top_level_folder_gives_the_same_data(
    sample_dataset: Path, preprocessed_dataset: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "input"
    inbox.mkdir()
    with zipfile.ZipFile(inbox / "dogImages.zip", "w") as archive:
        for path in sorted(sample_dataset.rglob("*")):
            archive.write(path, "dogImages/" + path.relative_to(sample_dataset).as_posix())
        archive.writestr("__MACOSX/dogImages/._junk", b"resource fork")
    assert run_main(inbox, tmp_path / "out") == 0
    assert tree_digest(tmp_path / "out" / "data") == tree_digest(preprocessed_dataset / "data")
    for name in ("stats.json", "classes.json", "quarantine.json"):
        assert (tmp_path / "out" / "stats" / name).read_text() == (
            preprocessed_dataset / "stats" / name
        ).read_text()
    manifest = json.loads((tmp_path / "out" / "stats" / "manifest.json").read_text())
    assert manifest["source"] == "dogImages.zip"


def test_mismatched_classes_fail_naming_them_and_write_nothing(
    sample_dataset: Path, tmp_path: Path, caplog
) -> None:
    data = tmp_path / "images"
    shutil.copytree(sample_dataset, data)
    classes = dogdata.list_classes(data / "train")
    shutil.rmtree(data / "valid" / classes[1])
    (data / "test" / "999.Extra_breed").mkdir()
    shutil.copy(next((data / "test" / classes[0]).iterdir()), data / "test" / "999.Extra_breed" / "x.jpg")
    assert run_main(data, tmp_path / "out") == 2
    message = caplog.text
    assert "valid lacks" in message and classes[1] in message and "999.Extra_breed" in message
    assert "train lacks 999.Extra_breed" in message
    assert not (tmp_path / "out").exists()


def test_a_one_class_data_set_fails_naming_the_class(sample_dataset: Path, tmp_path: Path, caplog) -> None:
    """One class would train nothing and pass any accuracy gate at 100%."""
    data = tmp_path / "images"
    keep = dogdata.list_classes(sample_dataset / "train")[0]
    for split in ("train", "valid", "test"):
        shutil.copytree(sample_dataset / split / keep, data / split / keep)
    assert run_main(data, tmp_path / "out") == 2
    assert f"a data set needs at least two classes; found one: {keep}" in caplog.text
    assert not (tmp_path / "out").exists()


def test_refuses_non_empty_output_and_keeps_its_files(sample_dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / "keep.txt").write_text("mine")
    assert run_main(sample_dataset, tmp_path) == 2
    assert (tmp_path / "stats" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "data").exists()


def test_a_folder_without_splits_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "in" / "photos").mkdir(parents=True)
    (tmp_path / "in" / "notes.txt").write_text("x")
    with pytest.raises(preprocess.DataError, match="train/, valid/ and test/"):
        preprocess.run(tmp_path / "in", tmp_path / "o", tmp_path / "s", 32, 0)


def test_a_zip_on_one_instance_and_an_empty_share_merge_to_the_one_instance_outputs(
    sample_dataset: Path, preprocessed_dataset: Path, tmp_path: Path
) -> None:
    """ShardedByS3Key hands a single .zip to one instance and nothing to the other: the first does
    all the work, the second writes an empty part, and the merge still gives the one-instance stats."""
    from training_code import preprocess_merge

    inbox = tmp_path / "algo-1" / "input"
    inbox.mkdir(parents=True)
    with zipfile.ZipFile(inbox / "images.zip", "w") as archive:
        for path in sorted(sample_dataset.rglob("*")):
            archive.write(path, path.relative_to(sample_dataset).as_posix())
    hosts = ["algo-1", "algo-2"]
    stats = tmp_path / "stats"  # both instances upload to one prefix
    for host in hosts:
        part = preprocess.run(
            tmp_path / host / "input", tmp_path / host / "data", tmp_path / host / "stats", 32, 2,
            host=host, hosts=hosts,
        )  # fmt: skip
        assert (len(part["kept"]) > 0) == (host == "algo-1")
        shutil.copytree(tmp_path / host / "stats", stats, dirs_exist_ok=True)
    assert preprocess_merge.main(["--parts-dir", str(stats), "--stats-dir", str(tmp_path / "merged")]) == 0
    for name in ("stats.json", "classes.json", "quarantine.json"):
        expected = (preprocessed_dataset / "stats" / name).read_bytes()
        assert (tmp_path / "merged" / name).read_bytes() == expected, name
    assert tree_digest(tmp_path / "algo-1" / "data") == tree_digest(preprocessed_dataset / "data")
