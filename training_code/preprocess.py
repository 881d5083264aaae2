"""Processing job: turn a raw dog-breed ImageFolder (folder or .zip) into a clean data set plus stats.

    python preprocess.py [--input-dir DIR] [--output-dir DIR] [--stats-dir DIR] [--image-size 224]

Input: ``train/ valid/ test/`` with one folder per breed, either as folders or inside one ``.zip``
(the original ``dogImages.zip`` wraps them in a top-level ``dogImages/`` folder; single wrapper folders
are looked through). The source is only ever read.

Every file is verified (PIL ``verify()`` and a full decode). What cannot be used (empty, truncated,
corrupt, not an image, outside a class folder) goes to ``quarantine.json`` with the reason. Usable RGB
JPEG/PNG files are copied byte for byte; others (CMYK, grey, palette, alpha, other formats) are converted
to RGB: JPEGs re-encoded as JPEG (quality 95), everything else as PNG. The three splits must have the
same class folders, or the job fails naming the missing and extra ones before writing anything.

Outputs: the clean ImageFolder in ``--output-dir`` and, in ``--stats-dir``, ``stats.json`` (exact
per-channel mean/std of the train split at ``--image-size``), ``classes.json``, ``manifest.json`` (per
split: counts per class, files with sha256) and ``quarantine.json``. Same input, same bytes out.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import posixpath
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torchdata.nodes as tn
from PIL import Image

if __package__:  # imported as training_code.preprocess (tests)
    from . import contract, dogdata, pixel_stats, preprocess_merge, progress, thread_map
    from .image_sources import (
        IGNORED_NAMES,
        SPLITS,
        DataError,
        EmptySource,
        FolderSource,
        ZipSource,
        open_source,
    )
else:  # run as a script inside the processing container
    import contract  # type: ignore[no-redef]
    import dogdata  # type: ignore[no-redef]
    import pixel_stats  # type: ignore[no-redef]
    import preprocess_merge  # type: ignore[no-redef]
    import progress  # type: ignore[no-redef]
    import thread_map  # type: ignore[no-redef]
    from image_sources import (  # type: ignore[no-redef]
        IGNORED_NAMES,
        SPLITS,
        DataError,
        EmptySource,
        FolderSource,
        ZipSource,
        open_source,
    )

COPY_AS_IS = {("JPEG", "RGB"), ("PNG", "RGB")}
REENCODE_JPEG_QUALITY = 95
PROGRESS_EVERY = 500
STATS_PROGRESS_EVERY = 2000

log = logging.getLogger("preprocess")


# --------------------------------------------------------------------------------------------- checks


def is_ignored(parts: list[str]) -> bool:
    """System clutter (``__MACOSX``, ``.DS_Store``, hidden folders) is skipped, not quarantined."""
    return any(part in IGNORED_NAMES or (part.startswith(".") and part not in (".", "..")) for part in parts)


@dataclass(frozen=True)
class Candidate:
    """A file of the source that would belong to a split and class if it is a usable image."""

    source_path: str
    split: str
    class_name: str | None
    inner_path: str  # path below the class folder


def plan(paths: list[str]) -> tuple[list[Candidate], list[dict[str, str]]]:
    """Sort the source's files into split/class candidates and files that cannot belong anywhere."""
    candidates: list[Candidate] = []
    rejected: list[dict[str, str]] = []
    for path in paths:
        parts = path.split("/")
        if parts[0] not in SPLITS:
            continue  # README, LICENSE and other files beside the splits are not part of the data
        if is_ignored(parts):
            continue
        if any(part in ("", ".", "..") for part in parts):
            rejected.append({"path": path, "reason": "unsafe path"})
        elif len(parts) < 3:
            rejected.append({"path": path, "reason": "not inside a class folder"})
        elif not dogdata.is_image_file(path):
            rejected.append(
                {
                    "path": path,
                    "reason": f"not an image file extension ({posixpath.splitext(path)[1] or 'none'})",
                }
            )
        else:
            candidates.append(Candidate(path, parts[0], parts[1], "/".join(parts[2:])))
    return candidates, rejected


def class_folders(source_paths: list[str]) -> dict[str, list[str]]:
    """The class folders each split has among ``source_paths`` (a whole data set or one share of it)."""
    per_split: dict[str, set[str]] = {split: set() for split in SPLITS}
    for path in source_paths:
        parts = path.split("/")
        if len(parts) >= 3 and parts[0] in per_split and not is_ignored(parts):
            per_split[parts[0]].add(parts[1])
    return {split: sorted(names) for split, names in per_split.items()}


def check_classes(source_paths: list[str]) -> list[str]:
    """The class list, if all three splits have the same (two or more) class folders; else a ``DataError``."""
    return preprocess_merge.check_class_folders([class_folders(source_paths)])


# --------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Outcome:
    """What happened to one candidate: written to ``output_path`` (maybe converted), or a reason."""

    candidate: Candidate
    output_path: str | None = None
    sha256: str | None = None
    converted: bool = False
    reason: str | None = None


def inspect_image(data: bytes) -> tuple[Image.Image | None, str | None]:
    """Open and fully decode ``data``; ``(image, None)`` when usable, ``(None, reason)`` when not."""
    if not data:
        return None, "empty file (0 bytes)"
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except Image.DecompressionBombError as error:
        return None, f"too large: {error}"
    except (OSError, SyntaxError, ValueError) as error:
        reason = (
            "not an image"
            if isinstance(error, Image.UnidentifiedImageError)
            else f"corrupt or truncated: {error}"
        )
        return None, reason
    if image.width < 1 or image.height < 1:
        return None, "empty image (0 pixels)"
    return image, None


def encode_rgb(image: Image.Image) -> tuple[bytes, str]:
    """Re-encode as RGB: JPEG stays JPEG (photos), anything else becomes lossless PNG."""
    rgb = dogdata.to_rgb(image)
    buffer = io.BytesIO()
    if image.format == "JPEG":
        rgb.save(buffer, format="JPEG", quality=REENCODE_JPEG_QUALITY)
        return buffer.getvalue(), ".jpg"
    rgb.save(buffer, format="PNG")
    return buffer.getvalue(), ".png"


def output_name(inner_path: str, extension: str) -> str:
    """Keep the name when its extension already fits the format; append one otherwise (``a.bmp.png``)."""
    same = {".jpg": (".jpg", ".jpeg"), ".png": (".png",)}[extension]
    return inner_path if inner_path.lower().endswith(same) else inner_path + extension


def process_file(
    candidate: Candidate, source: FolderSource | ZipSource | EmptySource, output_dir: Path
) -> Outcome:
    """Verify one file and write its clean version; never raises for a bad image, it reports it."""
    try:
        data = source.read(candidate.source_path)
    except OSError as error:
        return Outcome(candidate, reason=f"unreadable: {error.strerror or error}")
    image, reason = inspect_image(data)
    if image is None:
        return Outcome(candidate, reason=reason)
    converted = (image.format, image.mode) not in COPY_AS_IS
    if converted:
        data, extension = encode_rgb(image)
        name = output_name(candidate.inner_path, extension)
    else:
        name = candidate.inner_path
    relative = f"{candidate.split}/{candidate.class_name}/{name}"
    target = output_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return Outcome(candidate, relative, hashlib.sha256(data).hexdigest(), converted)


def process_all(
    candidates: list[Candidate],
    source: FolderSource | ZipSource | EmptySource,
    output_dir: Path,
    num_workers: int,
) -> list[Outcome]:
    """Verify and write every candidate in ``num_workers`` threads, in input order, showing progress (a
    bar in a terminal, a line every ``PROGRESS_EVERY`` files in a log)."""
    node = thread_map.map_node(
        tn.IterableWrapper(candidates), lambda item: process_file(item, source, output_dir), num_workers
    )
    outcomes: list[Outcome] = []
    bad = 0
    shown = progress.Progress(
        len(candidates),
        "verify",
        log=log,
        line="verified {done}/{total} files ({quarantined} quarantined)",
        every=PROGRESS_EVERY,
        unit="file",
    )
    with shown:
        for outcome in tn.Loader(node):
            outcomes.append(outcome)
            bad += outcome.reason is not None
            shown.update(quarantined=bad)
    return outcomes


# --------------------------------------------------------------------------------------------- reports


def kept_record(outcome: Outcome) -> dict[str, object]:
    """A written file as a part lists it (``preprocess_merge.build_manifest`` reads these)."""
    return {
        "split": outcome.candidate.split,
        "class": outcome.candidate.class_name,
        "path": outcome.output_path,
        "sha256": outcome.sha256,
        "source": outcome.candidate.source_path,
        "converted": outcome.converted,
    }


def refuse_non_empty(output_dir: Path, stats_dir: Path) -> None:
    """Fail rather than mix with (or delete) what an earlier run or a person left in the output folders."""
    for folder in (output_dir, stats_dir):
        if folder.is_dir() and any(folder.iterdir()):
            raise DataError(f"output folder {folder} is not empty; give an empty or new folder")


def train_histogram(train_files: list[Path], image_size: int, num_workers: int) -> list[int]:
    """The exact 3x256 pixel counts of the kept training images at ``image_size`` (stats.json's source)."""
    log.info("counting the pixels of %d training images at %d px", len(train_files), image_size)
    with progress.Progress(
        len(train_files),
        "stats",
        log=log,
        line="stats: {done}/{total} training images",
        every=STATS_PROGRESS_EVERY,
        unit="img",
    ) as shown:
        return pixel_stats.channel_histogram(train_files, image_size, num_workers, on_done=shown.update)


def process_share(
    input_dir: Path,
    output_dir: Path,
    image_size: int,
    num_workers: int,
    *,
    host: str = contract.DEFAULT_HOST,
    hosts: list[str] | None = None,
) -> preprocess_merge.Part:
    """Verify and write the files in ``input_dir`` (all of them, or this host's share of a sharded
    input); returns the part :mod:`preprocess_merge` merges. A whole data set has its classes checked
    before anything is written; a share cannot know them, the merge checks them."""
    hosts = hosts or [host]
    shard = len(hosts) > 1
    with open_source(input_dir, shard=shard) as source:
        paths = source.files()
        folders = class_folders(paths)
        if not shard:
            check_classes(paths)
        elif isinstance(source, ZipSource):
            log.warning(
                "%s: one .zip cannot be shared between %d instances; this one processes all of it "
                "(give a prefix of train/ valid/ test/ folders to scale out)",
                source.description,
                len(hosts),
            )
        candidates, rejected = plan(paths)
        log.info(
            "%s: found %d files in %d classes in %s",
            host,
            len(candidates),
            len(set().union(*map(set, folders.values()))),
            source.description,
        )
        outcomes = process_all(candidates, source, output_dir, num_workers)
        name = Path(source.description).name if paths else None
    kept = [kept_record(outcome) for outcome in outcomes if outcome.output_path]
    train_files = [output_dir / str(item["path"]) for item in kept if item["split"] == "train"]
    return {
        "format": preprocess_merge.PART_FORMAT,
        "host": host,
        "hosts": hosts,
        "image_size": image_size,
        "source": name,
        "class_folders": folders,
        "kept": kept,
        "quarantine": rejected
        + [{"path": item.candidate.source_path, "reason": item.reason} for item in outcomes if item.reason],
        "train_histogram": train_histogram(train_files, image_size, num_workers),
    }


def run(
    input_dir: Path,
    output_dir: Path,
    stats_dir: Path,
    image_size: int,
    num_workers: int,
    *,
    host: str = contract.DEFAULT_HOST,
    hosts: list[str] | None = None,
) -> dict:
    """The whole job on one host: returns ``stats.json``'s content. On one of several hosts: writes
    this host's part (``parts/<host>.json``) for the ``MergeStats`` step and returns it. Raises
    ``DataError`` before writing on bad layout."""
    refuse_non_empty(output_dir, stats_dir)
    part = process_share(input_dir, output_dir, image_size, num_workers, host=host, hosts=hosts)
    if len(part["hosts"]) > 1:
        path = preprocess_merge.write_part(stats_dir, part)
        kept, bad = len(part["kept"]), len(part["quarantine"])
        log.info("%s: wrote %s (%d files kept, %d quarantined)", host, path, kept, bad)
        return part
    return preprocess_merge.merge_parts([part], stats_dir)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-dir", type=Path, default=Path(contract.processing_input("data")))
    parser.add_argument("--output-dir", type=Path, default=Path(contract.processing_output("data")))
    parser.add_argument("--stats-dir", type=Path, default=Path(contract.processing_output("stats")))
    parser.add_argument("--image-size", type=int, default=224, help="Resolution the stats are computed at.")
    parser.add_argument("--num-workers", type=int, default=os.cpu_count() or 1, help="Decoding threads.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    contract.configure_logging()
    args = parse_args(argv)
    try:
        with progress.logs_above_bars():
            host, hosts = contract.processing_hosts()
            run(
                args.input_dir,
                args.output_dir,
                args.stats_dir,
                args.image_size,
                args.num_workers,
                host=host,
                hosts=hosts,
            )
    except (DataError, zipfile.BadZipFile) as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
