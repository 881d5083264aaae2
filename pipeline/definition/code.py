"""Content-addressed packaging of ``training_code/``.

The SDK uploads code to timestamped S3 keys while it builds a definition, so every build differs and
SageMaker step caching never hits. dogpipe instead packs ``training_code/`` into a *deterministic*
``sourcedir.tar.gz`` (sorted entries, mtime 0, uid/gid 0, gzip header mtime 0, no ``__pycache__``) and
names it by its SHA-256: the same sources give the same key, hence the same definition bytes.

Building only computes URIs. Staging (copying the archive and the unpacked files to those URIs) is done
by ``pipeline.sagemaker.aws`` before an upsert and by the local engine before a run, from
:class:`CodeArchive`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig

CODE_DIR = Path(__file__).resolve().parents[2] / "training_code"
ARCHIVE_NAME = "sourcedir.tar.gz"
_EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class CodeArchive:
    """The packed training code: its hash, the tar.gz bytes, and the files it holds.

    ``files`` maps a POSIX relative path to the file's bytes; the processing steps read the unpacked
    copy under :meth:`source_prefix_uri`, training and tuning jobs read ``data`` at :meth:`sourcedir_uri`.
    """

    sha256: str
    data: bytes = field(repr=False)
    files: dict[str, bytes] = field(repr=False)

    def code_prefix_uri(self, cfg: PipelineConfig) -> str:
        """``{s3_root}/code/<sha256>``: everything staged for this exact code."""
        return f"{cfg.project.s3_root}/code/{self.sha256}"

    def sourcedir_uri(self, cfg: PipelineConfig) -> str:
        """The archive training/tuning jobs receive as ``sagemaker_submit_directory``."""
        return f"{self.code_prefix_uri(cfg)}/{ARCHIVE_NAME}"

    def source_prefix_uri(self, cfg: PipelineConfig) -> str:
        """The unpacked sources processing jobs mount at ``/opt/ml/processing/input/code``."""
        return f"{self.code_prefix_uri(cfg)}/source"

    def staging_plan(self, cfg: PipelineConfig) -> dict[str, bytes]:
        """Every S3 URI to write before a run, with its bytes (the archive and each unpacked file)."""
        plan = {self.sourcedir_uri(cfg): self.data}
        source = self.source_prefix_uri(cfg)
        plan.update({f"{source}/{relative}": content for relative, content in self.files.items()})
        return plan

    def stage_missing(
        self, cfg: PipelineConfig, exists: Callable[[str], bool], write: Callable[[str, bytes], None]
    ) -> list[str]:
        """Write each object of :meth:`staging_plan` that ``exists`` says is missing (content-addressed
        keys never change, so a present one is the same); returns the URIs written. S3
        (``pipeline.sagemaker.pipelines``) and the local object store (``pipeline.local.run``) both stage
        through here."""
        written = []
        for uri, data in self.staging_plan(cfg).items():
            if not exists(uri):
                write(uri, data)
                written.append(uri)
        return written


def _included(relative: Path) -> bool:
    return not (_EXCLUDED_DIRS & set(relative.parts)) and not relative.name.endswith(_EXCLUDED_SUFFIXES)


def collect_files(code_dir: Path = CODE_DIR) -> dict[str, bytes]:
    """Read the files to ship, keyed by sorted POSIX relative path (symlinks followed)."""
    if not code_dir.is_dir():
        raise FileNotFoundError(f"training code folder not found: {code_dir}")
    paths = (path for path in code_dir.rglob("*") if path.is_file())
    selected = sorted(
        (path.relative_to(code_dir).as_posix(), path)
        for path in paths
        if _included(path.relative_to(code_dir))
    )
    return {relative: path.read_bytes() for relative, path in selected}


def _tar_entry(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(files: dict[str, bytes]) -> bytes:
    """A tar.gz of ``files`` whose bytes depend only on names and contents."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            content = files[name]
            archive.addfile(_tar_entry(name, len(content)), io.BytesIO(content))
    compressed = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of the temp name and the clock.
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as stream:
        stream.write(raw.getvalue())
    return compressed.getvalue()


def package_code(code_dir: Path = CODE_DIR) -> CodeArchive:
    """Pack ``code_dir`` (default ``training_code/``) into a content-addressed :class:`CodeArchive`."""
    files = collect_files(code_dir)
    if not files:
        raise FileNotFoundError(f"training code folder is empty: {code_dir}")
    data = pack(files)
    return CodeArchive(sha256=hashlib.sha256(data).hexdigest(), data=data, files=files)
