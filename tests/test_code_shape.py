"""Small modules with one job: no module under pipeline/, steps/, training_code/ over 400 lines and no
function (or method) over 50, counted from its ``def`` line to its last line, docstring included."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "steps", "training_code")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def shape_problems(root: Path) -> list[str]:
    """``path`` for each module over the line limit, ``path:function`` for each function over its limit."""
    problems = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            text = path.read_text()
            if len(text.splitlines()) > MAX_MODULE_LINES:
                problems.append(relative)
            functions = (
                node
                for node in ast.walk(ast.parse(text))
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
            problems += [
                f"{relative}:{node.name}"
                for node in functions
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
            ]
    return problems


def test_no_module_or_function_over_the_limits() -> None:
    problems = shape_problems(REPO)
    assert not problems, (
        f"over {MAX_MODULE_LINES} lines per module or {MAX_FUNCTION_LINES} per function: {problems}"
    )


def test_the_check_counts_functions_and_modules(tmp_path: Path) -> None:
    body = "".join(f"    x = {index}\n" for index in range(MAX_FUNCTION_LINES - 1))
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "ok.py").write_text(f"def fits():\n{body}")  # exactly the limit
    method = "".join(f"    {line}\n" for line in f"def method(self):\n{body}    y = 1".splitlines())
    (tmp_path / "steps" / "long.py").write_text(f"class A:\n{method}")
    (tmp_path / "steps" / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert shape_problems(tmp_path) == ["steps/big.py", "steps/long.py:method"]
