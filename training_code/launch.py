"""Processing-job entry point: install what the container lacks, then run a script as ``__main__``.

    python3 launch.py preprocess.py --image-size 224

SageMaker's framework *training* containers install ``requirements.txt`` from the source dir themselves;
its *processing* containers do not. So the processing steps run this launcher, which checks each
requirement of ``requirements.txt`` (beside this file) against the installed distributions and, only
when one is missing or at a version outside its specifier, pip-installs the file. Under the local engine
everything is already installed and it goes straight to the script.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import runpy
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*)")

log = logging.getLogger("launch")

if __package__:  # imported as training_code.launch (tests)
    from . import contract
else:  # run as a script from the code folder; contract uses the standard library only
    import contract  # type: ignore[no-redef]


def read_requirements(path: Path) -> list[str]:
    """Requirement lines of ``path`` without comments, blanks and pip options."""
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def is_satisfied(requirement: str) -> bool:
    """Whether the distribution is installed at a version the specifier allows.

    Distribution metadata rather than ``find_spec``: import names differ (``pillow`` is ``PIL``) and an
    importable numpy 2.3 would still break smdebug. Without ``packaging`` only presence is checked.
    """
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"cannot read requirement {requirement!r} in {REQUIREMENTS.name}")
    try:
        installed = importlib.metadata.version(match.group(1))
    except importlib.metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging ships with pip-based images
        return True
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


def missing_requirements(path: Path = REQUIREMENTS) -> list[str]:
    return [requirement for requirement in read_requirements(path) if not is_satisfied(requirement)]


def install(path: Path = REQUIREMENTS) -> None:
    """pip-install ``path``'s own requirements into this interpreter; a failure stops the job with pip's
    exit status. Its ``-r`` includes are left out: they are the training jobs' (MLflow, which no
    processing job uses), and the check above did not look at them either."""
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", *read_requirements(path)]
    log.info("installing %s: %s", path.name, " ".join(command))
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(f"launch: pip install -r {path} failed with exit status {result.returncode}")


def run_script(script: str, args: list[str]) -> None:
    """Run ``script`` as ``__main__`` with ``args``, its folder first on ``sys.path`` for its siblings."""
    path = Path(script)
    if not path.is_file():
        path = Path(__file__).resolve().parent / script
    if not path.is_file():
        raise SystemExit(f"launch: script not found: {script}")
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    runpy.run_path(str(path), run_name="__main__")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: launch.py SCRIPT.py [ARGS...]")
    contract.configure_logging()
    missing = missing_requirements()
    if missing:
        log.info("missing or wrong version: %s", ", ".join(missing))
        install()
    run_script(argv[0], argv[1:])


if __name__ == "__main__":
    main()
