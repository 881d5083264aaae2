"""Imports flow one way: each import in training_code/, steps/, pipeline/ against ARCHITECTURE.md's layers.

The layers are read from the table in ARCHITECTURE.md (one declaration); the checker walks each source
file's AST, so a lazy import inside a function counts as much as one at the top. The last tests prove the
checker fails: on a synthetic tree, and on a copy of this repository with one inverted import added.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("training_code", "steps", "pipeline")


def read_layers(architecture: Path) -> list[tuple[str, list[str]]]:
    """``[(layer, [module patterns])]`` from the table between the ``layers`` markers, top row first."""
    text = architecture.read_text()
    table = text.split("<!-- layers:start -->")[1].split("<!-- layers:end -->")[0]
    layers = []
    for row in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        layers.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return layers


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    """Index of the layer whose most specific pattern matches ``module`` (a package covers its modules)."""
    best: tuple[int, int] | None = None  # (specificity, layer index)
    for index, (_, patterns) in enumerate(layers):
        for pattern in patterns:
            if fnmatch.fnmatchcase(module, pattern) or module.startswith(pattern + "."):
                specificity = len(pattern) + (1000 if fnmatch.fnmatchcase(module, pattern) else 0)
                if best is None or specificity > best[0]:
                    best = (specificity, index)
    return None if best is None else best[1]


def _named(module: str, layers: list[tuple[str, list[str]]]) -> bool:
    """False for a module of a package that spans several layers (``pipeline``) when no row names it or a
    subpackage holding it: it only falls under the package's row by default."""
    top = module.split(".")[0]
    rows = [row for _, row in layers if any(p == top or p.startswith(top + ".") for p in row)]
    if len(rows) <= 1:
        return True
    dotted = [p for row in rows for p in row if p.startswith(top + ".")]
    return any(fnmatch.fnmatchcase(module, p) or module.startswith(p + ".") for p in dotted)


def imported_modules(path: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of our packages in ``path``: relative ones resolved, and
    ``from package import name`` read as the module ``package.name`` when there is one."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            source = ".".join(part for part in (base, node.module or "") if part)
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        found += [(node.lineno, name) for name in dict.fromkeys(names) if name.split(".")[0] in PACKAGES]
    return found


def violations(root: Path, layers: list[tuple[str, list[str]]]) -> list[str]:
    """One line per import that goes against the layers, or per module that has no layer."""
    problems = []
    paths = [path for package in PACKAGES for path in sorted((root / package).rglob("*.py"))]
    known = {module_name(path, root) for path in paths}
    for path in paths:
        module = module_name(path, root)
        own = layer_of(module, layers)
        if own is None:
            problems.append(f"{module}: no layer in ARCHITECTURE.md names it")
            continue
        for line, target in imported_modules(path, module, known):
            theirs = layer_of(target, layers)
            if theirs is not None and theirs > own:
                unnamed = "" if _named(module, layers) else "; name the module in its row of ARCHITECTURE.md"
                problems.append(
                    f"{path.relative_to(root)}:{line}: {module} ({layers[own][0]}) imports {target} "
                    f"({layers[theirs][0]}, a later layer){unnamed}"
                )
    return sorted(problems)


def test_every_import_follows_the_layers() -> None:
    problems = violations(REPO, read_layers(REPO / "ARCHITECTURE.md"))
    assert not problems, "\n".join(problems)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_the_checker_names_an_inverted_import_in_a_synthetic_tree(tmp_path: Path) -> None:
    layers = [
        ("containers", ["training_code"]),
        ("foundation", ["pipeline.config", "pipeline"]),
        ("builders", ["steps"]),
        ("app", ["pipeline.app"]),
    ]
    root = _tree(
        tmp_path,
        {
            "training_code/train.py": "def f():\n    from pipeline.config import X\n",  # lazy, still counts
            "steps/a.py": "from pipeline import config\nfrom training_code import train\n",
            "pipeline/__init__.py": "",
            "pipeline/config.py": "from . import app\n",
            "pipeline/app.py": "import steps.a\nfrom pipeline import config\n",
        },
    )
    assert violations(root, layers) == [
        "pipeline/config.py:1: pipeline.config (foundation) imports pipeline.app (app, a later layer)",
        "training_code/train.py:2: training_code.train (containers) imports pipeline.config "
        "(foundation, a later layer)",
    ]
    (root / "pipeline" / "app.py").write_text("")
    (root / "pipeline" / "config.py").write_text("from pipeline import app\n")  # absolute form, same edge
    assert violations(root, layers)[0].startswith(
        "pipeline/config.py:1: pipeline.config (foundation) imports pipeline.app"
    )
    unnamed = violations(root, [layers[0], ("foundation", ["pipeline.config"]), layers[2]])
    assert "pipeline.app: no layer in ARCHITECTURE.md names it" in unnamed
    (root / "pipeline" / "new.py").write_text("import steps.a\n")  # falls under `pipeline` (foundation)
    assert (
        "pipeline/new.py:1: pipeline.new (foundation) imports steps.a (builders, a later layer); "
        "name the module in its row of ARCHITECTURE.md"
    ) in violations(root, layers)


@pytest.mark.parametrize(
    ("file", "inverted"),
    [
        ("steps/common.py", "from pipeline.definition.build import get_pipeline\n"),
        ("training_code/contract.py", "def _f():\n    import pipeline.config\n"),
        ("pipeline/serving/app.py", "from pipeline import cli\n"),
        ("pipeline/report/collect.py", "def _f():\n    from pipeline.cli.run import LOCAL_COMMANDS\n"),
    ],
)
def test_an_inverted_import_added_to_a_copy_of_the_repository_fails(
    tmp_path: Path, file: str, inverted: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    layers = read_layers(REPO / "ARCHITECTURE.md")
    assert violations(tmp_path, layers) == []
    target = tmp_path / file
    target.write_text(target.read_text() + "\n" + inverted)
    problems = violations(tmp_path, layers)
    assert len(problems) == 1 and problems[0].startswith(f"{file}:"), problems
