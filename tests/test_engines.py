"""The one engine interface: both engines implement it whole, ``engine_for`` alone reads ``cfg.engine``,
no command module reaches into an engine's package, and a verb one engine lacks is refused by that
engine's own declaration, naming what to do instead."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import DEFAULT_CONFIG, LOCAL_CONFIG, load_config
from pipeline.engines import (
    Engine,
    LocalVerbs,
    SageMakerVerbs,
    VerbNotHere,
    engine_for,
    served_packages,
)
from pipeline.errors import DogpipeError
from pipeline.local.facade import LocalFacade
from pipeline.sagemaker.facade import SageMakerFacade
from tests.moto_server import hide_aws_config

REPO = Path(__file__).resolve().parent.parent


def _operations(protocol: type) -> dict[str, inspect.Signature]:
    """The methods a Protocol declares itself (not those of ``object`` or ``Protocol``)."""
    own: dict[str, inspect.Signature] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object,) or klass.__module__ == "typing":
            continue
        for name, value in vars(klass).items():
            function = getattr(value, "__func__", value)
            if callable(function) and not name.startswith("_"):
                own[name] = inspect.signature(function)
    return own


def _parameters(signature: inspect.Signature) -> list[tuple[str, object]]:
    """Names and kinds, without the receiver (``self``/``cls``, bound or not)."""
    return [(p.name, p.kind) for p in signature.parameters.values() if p.name not in {"self", "cls"}]


@pytest.mark.parametrize(
    ("facade", "protocol"), [(LocalFacade, LocalVerbs), (SageMakerFacade, SageMakerVerbs)]
)
def test_each_engine_implements_the_interface_and_its_own_verbs_with_the_same_parameters(
    facade: type, protocol: type
) -> None:
    wanted = _operations(protocol)
    assert set(_operations(Engine)) <= set(wanted)  # the verbs extend the shared interface
    for name, signature in wanted.items():
        assert hasattr(facade, name), f"{facade.__name__} lacks {name}"
        theirs = inspect.signature(getattr(facade, name))
        mine = _parameters(signature)
        if mine and mine[0][0] in {"self", "cls"}:
            mine = mine[1:]
        assert _parameters(theirs)[: len(mine)] == mine, f"{facade.__name__}.{name}{theirs}"


def test_no_verb_is_declared_by_both_engines_and_each_refusal_hint_is_for_the_other_engines_verb() -> None:
    assert not LocalFacade.verbs & SageMakerFacade.verbs
    assert set(LocalFacade.instead) <= SageMakerFacade.verbs
    assert set(SageMakerFacade.instead) <= LocalFacade.verbs


def test_only_engine_for_reads_the_configs_engine() -> None:
    readers = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "engine":
                readers.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert len(readers) == 1, readers
    assert readers[0].startswith("pipeline/engines.py:") and readers[0].endswith("cfg.engine")


def test_no_command_module_imports_either_engines_package() -> None:
    offenders = []
    for path in sorted((REPO / "pipeline" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith(("pipeline.local", "pipeline.sagemaker")):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert not offenders, offenders


def _config(tmp_path: Path, engine: str, **project: str | None) -> Path:
    raw = yaml.safe_load((LOCAL_CONFIG if engine == "local" else DEFAULT_CONFIG).read_text())
    raw["local"] = {"root": str(tmp_path / "store")}
    raw["project"].update(project)
    path = tmp_path / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_verb_of_the_other_engine_is_refused_before_that_engine_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOGPIPE_REGION", raising=False)
    sagemaker = load_config(_config(tmp_path, "sagemaker", region=""))
    with pytest.raises(VerbNotHere, match=r"`dogpipe run` acts on engine: local, but the config has engine"):
        engine_for(sagemaker, verb="run")  # not "no AWS region": the verb is what is wrong
    with pytest.raises(DogpipeError, match="no AWS region"):
        engine_for(sagemaker)
    local = load_config(_config(tmp_path, "local"))
    with pytest.raises(VerbNotHere, match=r"on engine: local use `dogpipe run --resume EXECUTION`"):
        engine_for(local, verb="executions retry")
    assert isinstance(engine_for(local, verb="run"), LocalFacade)


@pytest.mark.parametrize(
    ("engine", "command", "expected"),
    [
        ("local", ["executions", "stop", "1a2b3c4d5e6f"], "Ctrl-C or kill the `dogpipe run`"),
        ("local", ["endpoints", "delete", "dogpipe-prod", "--yes"], "`dogpipe endpoints stop NAME`"),
        ("local", ["iam-policy"], "`dogpipe iam-policy` acts on engine: sagemaker"),
        ("sagemaker", ["endpoints", "stop", "dogpipe-prod"], "`dogpipe endpoints delete NAME --yes`"),
    ],
)
def test_the_cli_refuses_a_verb_with_what_does_its_job_on_this_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, command: list[str], expected: str
) -> None:
    hide_aws_config(monkeypatch, tmp_path)
    result = CliRunner().invoke(cli, [*command, "--config", str(_config(tmp_path, engine))])
    assert result.exit_code == 1, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_served_packages_come_from_the_engines_endpoints_by_stage(tmp_path: Path) -> None:
    """A local engine with no servers serves nothing; one whose prod endpoint serves a package maps
    that package to prod (the facade's ``serving`` is the only engine-specific part)."""
    engine = LocalFacade(load_config(_config(tmp_path, "local")))
    assert served_packages(engine) == {}

    class Serving(LocalFacade):
        def serving(self, endpoints: list[str]) -> dict[str, str | None]:
            return {
                name: ("arn:v2" if name == self.cfg.deploy.production_endpoint else None)
                for name in endpoints
            }

    assert served_packages(Serving(engine.cfg)) == {"arn:v2": ["prod"]}
