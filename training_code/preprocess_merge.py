"""Processing job: merge the parts of an N-instance Preprocess into what one instance would have written.

    python preprocess_merge.py [--parts-dir DIR] [--stats-dir DIR]

With ``processing.instance_count: N`` every Preprocess instance gets a share of the input's objects
(``ShardedByS3Key``), writes the clean files of its share and one part, ``parts/<host>.json``: the class
folders it saw per split, the files it kept (with sha256), what it quarantined, and the exact 3x256
integer pixel histogram of the training images it kept. This job (the ``MergeStats`` step) checks the
classes of the whole, sums the histograms and sorts the lists by source path, and writes ``stats.json``,
``classes.json``, ``manifest.json`` and ``quarantine.json`` bit-identical to a one-instance run: integer
sums do not depend on how the files were shared, and one instance lists files in the same sorted order.
A one-instance Preprocess runs the same merge in-process over its single part, so there is one rule.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

if __package__:  # imported as training_code.preprocess_merge (tests)
    from . import contract, dogdata, pixel_stats
    from .image_sources import SPLITS, DataError
else:  # run as a script inside the processing container
    import contract  # type: ignore[no-redef]
    import dogdata  # type: ignore[no-redef]
    import pixel_stats  # type: ignore[no-redef]
    from image_sources import SPLITS, DataError  # type: ignore[no-redef]

PART_FORMAT = 1
PARTS_DIR = "parts"
MANIFEST_FILE = "manifest.json"
QUARANTINE_FILE = "quarantine.json"

log = logging.getLogger("preprocess")

Part = dict[str, Any]


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


# --------------------------------------------------------------------------------------------- checks


def check_class_folders(per_split_parts: list[dict[str, list[str]]]) -> list[str]:
    """The class list, if all three splits have the same (two or more) class folders over all parts;
    else a ``DataError`` naming what differs."""
    per_split: dict[str, set[str]] = {split: set() for split in SPLITS}
    for folders in per_split_parts:
        for split in SPLITS:
            per_split[split].update(folders.get(split, []))
    every = set().union(*per_split.values())
    problems = []
    for split in SPLITS:
        if not per_split[split]:
            problems.append(f"{split}: no class folders")
            continue
        missing = sorted(every - per_split[split])
        if missing:
            problems.append(f"{split} lacks {', '.join(missing)}")
    if problems:
        raise DataError("class folders differ between splits: " + "; ".join(problems))
    if len(every) < 2:  # one class trains nothing and would pass any accuracy gate at 100%
        raise DataError(f"a data set needs at least two classes; found one: {', '.join(sorted(every))}")
    return sorted(every)


# --------------------------------------------------------------------------------------------- parts


def part_path(stats_dir: Path, host: str) -> Path:
    return stats_dir / PARTS_DIR / f"{host}.json"


def write_part(stats_dir: Path, part: Part) -> Path:
    """One instance's part, named after its host so the instances' uploads to one prefix never collide."""
    path = part_path(stats_dir, part["host"])
    write_json(path, part)
    return path


def read_parts(parts_dir: Path) -> list[Part]:
    """Every host's part from ``parts_dir`` (or its ``parts/`` folder); a ``DataError`` when one is
    missing, of another format, or computed at another image size: a partial merge would be wrong."""
    folder = parts_dir / PARTS_DIR if (parts_dir / PARTS_DIR).is_dir() else parts_dir
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"no Preprocess parts (<host>.json) in {folder}")
    parts = [json.loads(path.read_text()) for path in files]
    for path, part in zip(files, parts, strict=True):
        if not isinstance(part, dict) or part.get("format") != PART_FORMAT:
            raise DataError(f"{path}: not a Preprocess part of format {PART_FORMAT}")
    hosts = parts[0]["hosts"]
    found = sorted(part["host"] for part in parts)
    if found != sorted(hosts) or any(part["hosts"] != hosts for part in parts):
        missing = sorted(set(hosts) - set(found))
        raise DataError(
            f"Preprocess parts of hosts {found} do not match the job's hosts {hosts}"
            + (f" (missing {', '.join(missing)})" if missing else "")
        )
    sizes = sorted({part["image_size"] for part in parts})
    if len(sizes) != 1:
        raise DataError(f"Preprocess parts computed at different image sizes: {sizes}")
    return sorted(parts, key=lambda part: hosts.index(part["host"]))


# --------------------------------------------------------------------------------------------- merge


def build_manifest(kept: list[dict[str, Any]], classes: list[str], source: str | None) -> dict:
    """Per split: counts per class and every kept file (sorted by source path, as one instance lists
    them) with its sha256."""
    manifest: dict = {"source": source, "splits": {}}
    for split in SPLITS:
        files = [item for item in kept if item["split"] == split]
        counts = {name: 0 for name in classes}
        for item in files:
            counts[item["class"]] += 1
        manifest["splits"][split] = {
            "num_images": len(files),
            "counts": counts,
            "files": [
                {
                    "path": item["path"],
                    "sha256": item["sha256"],
                    "source": item["source"],
                    "converted": item["converted"],
                }
                for item in files
            ],
        }
    return manifest


def source_name(parts: list[Part]) -> str | None:
    """The input's name (folder or .zip); every part that received files saw the same one."""
    names = sorted({part["source"] for part in parts if part["source"] is not None})
    if len(names) > 1:
        raise DataError(f"Preprocess parts read different sources: {names}")
    return names[0] if names else None


def merge_parts(parts: list[Part], stats_dir: Path) -> dict:
    """Write the merged outputs into ``stats_dir``; returns ``stats.json``'s content.

    The class check comes before anything is written; ``quarantine.json`` and ``manifest.json`` are
    written before a class without usable training images fails the job, so they say why.
    """
    classes = check_class_folders([part["class_folders"] for part in parts])
    kept = sorted((item for part in parts for item in part["kept"]), key=lambda item: item["source"])
    quarantine = sorted(
        (item for part in parts for item in part["quarantine"]), key=lambda item: item["path"]
    )
    for item in quarantine:
        log.warning("quarantined %s: %s", item["path"], item["reason"])
    manifest = build_manifest(kept, classes, source_name(parts))
    write_json(stats_dir / QUARANTINE_FILE, quarantine)
    write_json(stats_dir / MANIFEST_FILE, manifest)
    empty = [name for name, count in manifest["splits"]["train"]["counts"].items() if count == 0]
    if empty:
        raise DataError(f"no usable training images for class(es): {', '.join(empty)} (see quarantine.json)")
    histogram = [sum(column) for column in zip(*(part["train_histogram"] for part in parts), strict=True)]
    mean, std, num_pixels = pixel_stats.stats_from_histogram(histogram)
    image_size = parts[0]["image_size"]
    stats = {
        "mean": mean,
        "std": std,
        "image_size": image_size,
        "num_images": manifest["splits"]["train"]["num_images"],
        "num_pixels": num_pixels,
    }
    write_json(stats_dir / dogdata.CLASSES_FILE, classes)
    write_json(stats_dir / dogdata.STATS_FILE, stats)
    counts = ", ".join(f"{split} {manifest['splits'][split]['num_images']}" for split in SPLITS)
    log.info(
        "done: %d classes; kept %s; converted to RGB %d; quarantined %d; mean %s std %s",
        len(classes),
        counts,
        sum(item["converted"] for item in kept),
        len(quarantine),
        [round(value, 4) for value in mean],
        [round(value, 4) for value in std],
    )
    return stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts-dir", type=Path, default=Path(contract.processing_input("parts")))
    parser.add_argument("--stats-dir", type=Path, default=Path(contract.processing_output("stats")))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    contract.configure_logging()
    args = parse_args(argv)
    try:
        parts = read_parts(args.parts_dir)
        log.info("merging %d Preprocess parts (%s)", len(parts), ", ".join(part["host"] for part in parts))
        merge_parts(parts, args.stats_dir)
    except DataError as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
