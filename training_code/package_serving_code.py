"""Pack the serving code into the model dir (``model/code``), so the registered model needs no repack.

The SageMaker PyTorch serving container runs ``code/inference.py`` from the model archive and
pip-installs ``code/requirements.txt`` at start-up; ``train.py`` calls :func:`write_serving_code` when it
saves the model. That file is ``serving-requirements.txt`` (what the inference images lack), never the
training ``requirements.txt``: its smdebug/protobuf pins have nothing to do with serving and a pip
failure fails the endpoint.
"""

from __future__ import annotations

import ast
import logging
import shutil
from pathlib import Path

log = logging.getLogger("dogpipe.train")

CODE_DIR = "code"
SERVING_ENTRY = "inference.py"
REQUIREMENTS = "requirements.txt"
SERVING_REQUIREMENTS = "serving-requirements.txt"
HERE = Path(__file__).resolve().parent


def sibling_imports(source: Path) -> set[str]:
    """Sibling modules that ``source`` imports (``from . import x``, ``import x``, ``from x import y``)."""
    local = {path.stem for path in source.parent.glob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:
                found.update(alias.name for alias in node.names)
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & local


def write_serving_code(code_dir: Path, source_dir: Path = HERE) -> list[str]:
    """Copy ``inference.py``, the sibling modules it imports (transitively) and the serving requirements
    (as ``requirements.txt``) into ``code_dir``. Nothing is copied when the handler is absent."""
    entry = source_dir / SERVING_ENTRY
    if not entry.is_file():
        log.warning("%s not found: the model has no serving code", entry)
        return []
    wanted, pending = {entry.stem}, [entry]
    while pending:
        for name in sibling_imports(pending.pop()) - wanted:
            wanted.add(name)
            pending.append(source_dir / f"{name}.py")
    code_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in sorted(wanted):
        shutil.copy2(source_dir / f"{name}.py", code_dir / f"{name}.py")
        copied.append(f"{name}.py")
    if (source_dir / SERVING_REQUIREMENTS).is_file():
        shutil.copy2(source_dir / SERVING_REQUIREMENTS, code_dir / REQUIREMENTS)
        copied.append(REQUIREMENTS)
    return copied
