"""Where a served model comes from: MODEL as a user types it → a model directory and a version label.

MODEL is a ``model.tar.gz`` (what a training job writes; unpacked to a temporary folder that lives as
long as the server), a model directory (``model.pth`` + ``model_info.json``), or a registry version
``group/version`` resolved through the local engine's registry and object store.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REGISTRY_VERSION = re.compile(r"^(?P<group>[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})/(?P<version>\d+)$")


class ModelSourceError(ValueError):
    """MODEL names nothing servable; the message says what was looked for."""


@dataclass(frozen=True)
class ModelSource:
    """A model directory ready to load, and the version to report (``None``: the model's own)."""

    model_dir: Path
    version: str | None


def unpack_model_archive(archive: Path, destination: Path) -> Path:
    """Unpack ``model.tar.gz`` with tarfile's ``data`` filter, which refuses absolute paths, ``..``
    and links leaving the folder, so a hostile archive cannot write outside ``destination``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise ModelSourceError(f"{archive}: cannot unpack model archive: {error}") from None
    return destination


def _registry_archive(group: str, version: int, root: Path) -> Path:
    from pipeline.object_store import ObjectStore, StoreError
    from pipeline.registry import LocalRegistry, RegistryError

    try:
        package = LocalRegistry(root).get(group, version)
    except RegistryError as error:
        raise ModelSourceError(f"{group}/{version}: {error}") from None
    if not package.model_data_url:
        raise ModelSourceError(f"{group}/{version}: the model package has no model data URL")
    try:
        return ObjectStore(root).path_for(package.model_data_url)
    except StoreError as error:
        raise ModelSourceError(f"{group}/{version}: {error}") from None


def resolve_model(model: str, registry_root: Path, stack: ExitStack) -> ModelSource:
    """Resolve MODEL; temporary folders are registered on ``stack`` and removed when it closes."""
    path = Path(model).expanduser()
    version: str | None = None
    if not path.exists():
        match = REGISTRY_VERSION.match(model)
        if match is None:
            raise ModelSourceError(
                f"{model!r}: no such file or directory, and not a registry version 'group/version'"
            )
        version = model
        path = _registry_archive(match["group"], int(match["version"]), registry_root)
        if not path.exists():
            raise ModelSourceError(f"{model}: registered model data {path} is missing")
    if path.is_dir():
        return ModelSource(path, version)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dogpipe-serve-")))
    return ModelSource(unpack_model_archive(path, workdir), version)
