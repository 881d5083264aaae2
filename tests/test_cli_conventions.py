"""One option grammar on every command (issue 25): ``-o/--output table|json|text`` and ``--query`` on
every command that prints data, never ``-o`` for a file; ``--max-results``/``--next-token`` on every
listing; a bad option or value is one line on stderr with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.cli.output import FORMATS, cell, parse_table
from pipeline.config import LOCAL_CONFIG
from pipeline.registry import LocalRegistry

LISTINGS = {"executions list", "models list", "endpoints list"}
GROUP = "dogpipe-dog-breeds"


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = command
    return found


COMMANDS = _commands(cli)


def _option(command: click.Command, flag: str) -> click.Option | None:
    return next((p for p in command.params if isinstance(p, click.Option) and flag in p.opts), None)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_o_is_always_the_format_with_query_beside_it(path: str) -> None:
    command = COMMANDS[path]
    short = _option(command, "-o")
    if short is None:
        assert _option(command, "--output") is None, f"{path}: --output without -o"
        return
    assert isinstance(short.type, click.Choice) and tuple(short.type.choices) == FORMATS, path
    assert _option(command, "--query") is not None, f"{path}: -o without --query"


def test_listings_page_and_every_json_command_queries() -> None:
    formats = {path for path, command in COMMANDS.items() if _option(command, "-o")}
    assert LISTINGS | {"status", "predict", "validate"} <= formats
    for path in LISTINGS:
        assert _option(COMMANDS[path], "--max-results") and _option(COMMANDS[path], "--next-token"), path


@pytest.fixture
def config(tmp_path: Path) -> list[str]:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"] = {"root": str(tmp_path / "engine")}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    registry = LocalRegistry(tmp_path / "engine")
    for accuracy in (0.5, 0.9, 0.7, 0.8, 0.6):
        metrics = {"multiclass_classification_metrics": {"accuracy": {"value": accuracy}}}
        registry.register(GROUP, f"s3://b/{accuracy}/model.tar.gz", "image", metrics=metrics)
    return ["--config", str(path)]


def test_paging_walks_every_row_once_and_a_bad_token_is_a_usage_error(config: list[str]) -> None:
    runner = CliRunner()
    versions: list[int] = []
    token: list[str] = []
    for _ in range(5):
        page = runner.invoke(cli, ["models", "list", "--max-results", "2", "-o", "json", *token, *config])
        assert page.exit_code == 0, page.output
        versions += [row["version"] for row in json.loads(page.stdout)]
        more = [line for line in page.stderr.splitlines() if line.startswith("more: --next-token ")]
        if not more:
            break
        token = ["--next-token", more[0].split()[-1]]
    assert versions == [1, 2, 3, 4, 5]
    bad = runner.invoke(cli, ["models", "list", "--next-token", "garbage!", *config])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert "invalid --next-token 'garbage!'" in bad.output


def test_text_is_the_table_without_header_tab_separated(config: list[str]) -> None:
    runner = CliRunner()
    table = parse_table(runner.invoke(cli, ["models", "list", *config]).output)
    text = runner.invoke(cli, ["models", "list", "-o", "text", *config]).output
    assert [line.split("\t") for line in text.splitlines()] == [list(row.values()) for row in table]


def test_query_is_jmespath_over_the_json_in_any_format(config: list[str]) -> None:
    runner = CliRunner()
    query = ["--query", "[?accuracy > `0.65`].{v: version, a: accuracy}"]
    as_json = json.loads(runner.invoke(cli, ["models", "list", *query, "-o", "json", *config]).output)
    assert as_json == [{"v": 2, "a": 0.9}, {"v": 3, "a": 0.7}, {"v": 4, "a": 0.8}]
    table = runner.invoke(cli, ["models", "list", *query, *config]).output
    assert parse_table(table) == [{"v": cell(row["v"]), "a": cell(row["a"])} for row in as_json]
    versions = runner.invoke(cli, ["models", "list", "--query", "[].version", "-o", "text", *config])
    assert versions.output.split() == ["1", "2", "3", "4", "5"]
    broken = runner.invoke(cli, ["models", "list", "--query", "[?", *config])
    assert broken.exit_code == 2 and len(broken.output.strip().splitlines()) == 1
    assert broken.output.startswith("Error: invalid --query '[?'")


def _words(path: str) -> list[str]:
    return path.split()


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_an_unknown_option_is_one_line_exit_2(path: str, config: list[str]) -> None:
    result = CliRunner().invoke(cli, [*_words(path), "--no-such-option", *config], prog_name="dogpipe")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and f"'dogpipe {path} -h'" in lines[0]


BAD_VALUES = {click.Choice: "no-such-choice", click.IntRange: "-5", click.FloatRange: "-5"}


def _typed_options() -> list[tuple[str, str, str]]:
    found = []
    for path, command in sorted(COMMANDS.items()):
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag or param.hidden:
                continue
            if isinstance(param.type, tuple(BAD_VALUES)):
                bad = next(value for kind, value in BAD_VALUES.items() if isinstance(param.type, kind))
            elif param.type in (click.INT, click.FLOAT):
                bad = "not-a-number"
            else:
                continue
            found.append((path, param.opts[-1], bad))
    return found


@pytest.mark.parametrize(("path", "flag", "bad"), _typed_options())
def test_a_bad_value_for_a_typed_option_is_one_line_exit_2(
    path: str, flag: str, bad: str, config: list[str]
) -> None:
    given = config if _option(COMMANDS[path], "--config") else []
    result = CliRunner().invoke(cli, [*_words(path), flag, bad, *given])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and flag in lines[0], result.output
