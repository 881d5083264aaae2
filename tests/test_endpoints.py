"""Local endpoint lifecycle with real server processes and real signals.

Each server here is a real ``python -m pipeline.serving`` on the tiny model of ``serving_helpers``;
the deploys that race or get interrupted are separate Python processes, as two ``dogpipe`` commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.local.endpoint_servers import (
    EndpointError,
    list_endpoints,
    read_endpoint,
    server_alive,
    start_endpoint,
    stop_endpoint,
)
from pipeline.local.endpoint_smoke import smoke_prediction
from tests.serving_helpers import write_model_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("endpoint-model") / "model")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "engine"
    yield folder
    for row in list_endpoints(folder):
        stop_endpoint(folder, row.name)
    for process in _servers_of(folder):  # nothing a test started may outlive it
        process.kill()


def _servers_of(root: Path) -> list[psutil.Process]:
    """Live server processes whose log lives under ``root`` (each test's own servers)."""
    found = []
    for process in psutil.process_iter(["cmdline", "open_files"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if "pipeline.serving" in cmdline and str(root) in cmdline and process.status() != "zombie":
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _serve(root: Path, name: str, model: Path, **kwargs) -> dict:
    return start_endpoint(root, name, model, model_data=f"file://{model}", **kwargs)


def _model_link(root: Path, model: Path, label: str) -> Path:
    """A per-test path to the shared model, so each test can find its own servers by command line."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / f"model-{label}"
    link.symlink_to(model)
    return link


def _config(root: Path, tmp_path: Path) -> Path:
    config = tmp_path / "local.yaml"
    raw = yaml.safe_load((REPO / "config" / "local.yaml").read_text())
    raw["local"] = {"root": str(root)}
    config.write_text(yaml.safe_dump(raw))
    return config


def test_a_failing_new_server_leaves_the_old_one_serving_and_the_cli_shows_and_stops_it(
    root: Path, model_dir: Path, tmp_path: Path
) -> None:
    package = "arn:aws:sagemaker:local:000000000000:model-package/dogs/3"
    old = _serve(
        root,
        "dogpipe-prod",
        _model_link(root, model_dir, "a"),
        model_package_arn=package,
        smoke=smoke_prediction,
    )
    assert server_alive(old)

    def refuse(url: str) -> None:
        raise EndpointError(f"smoke prediction failed: {url} answered nonsense")

    with pytest.raises(EndpointError, match="answered nonsense"):
        _serve(root, "dogpipe-prod", _model_link(root, model_dir, "b"), smoke=refuse)
    assert read_endpoint(root, "dogpipe-prod") == old and server_alive(old)
    assert [process.pid for process in _servers_of(root)] == [old["pid"]]

    broken = root / "broken-model"
    broken.mkdir()
    (broken / "model_info.json").write_text("{}")
    with pytest.raises(EndpointError, match="exited with code"):
        _serve(root, "dogpipe-prod", broken)
    assert read_endpoint(root, "dogpipe-prod") == old and server_alive(old)

    config, runner = _config(root, tmp_path), CliRunner()
    table = runner.invoke(cli, ["endpoints", "list", "--config", str(config)])
    assert table.exit_code == 0, table.output
    header, row = table.output.splitlines()
    assert header.split() == ["NAME", "MODEL_VERSION", "URL", "PID", "ALIVE"]
    assert row.split() == ["dogpipe-prod", "dogs/3", old["url"], str(old["pid"]), "yes"]
    listed = runner.invoke(cli, ["endpoints", "list", "--config", str(config), "--output", "json"])
    (row,) = json.loads(listed.output)  # the table's fields and the details (package, start time)
    assert {key: row[key] for key in ("name", "model_version", "url", "pid", "alive")} == {
        "name": "dogpipe-prod",
        "model_version": "dogs/3",
        "url": old["url"],
        "pid": old["pid"],
        "alive": True,
    }
    assert row["model_package_arn"].endswith("model-package/dogs/3") and row["started_at"]
    unknown = runner.invoke(cli, ["endpoints", "stop", "nope", "--config", str(config)])
    assert unknown.exit_code == 1 and "dogpipe-prod" in unknown.output
    stopped = runner.invoke(cli, ["endpoints", "stop", "--all", "--config", str(config)])
    assert stopped.exit_code == 0 and "dogpipe-prod: stopped" in stopped.output
    assert not server_alive(old) and list_endpoints(root) == [] and _servers_of(root) == []


DEPLOY_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline.local.endpoint_servers import start_endpoint
    root, model = Path(sys.argv[1]), Path(sys.argv[2])
    record = start_endpoint(root, "race", model, model_data=str(model))
    print(record["pid"], flush=True)
    """
)


def _deploy_process(root: Path, model: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", DEPLOY_SCRIPT, str(root), str(model)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_deploys_of_one_name_leave_exactly_one_tracked_server(
    root: Path, model_dir: Path
) -> None:
    first = _deploy_process(root, _model_link(root, model_dir, "one"))
    second = _deploy_process(root, _model_link(root, model_dir, "two"))
    outputs = [process.communicate(timeout=240) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    record = read_endpoint(root, "race")
    live = _servers_of(root)
    assert [process.pid for process in live] == [record["pid"]]
    # Both started a server; the lock made one replace the other, which is what the record names.
    pids = [int(out.strip()) for out, _ in outputs]
    assert len(set(pids)) == 2 and record["pid"] in pids


def test_sigterm_while_a_server_starts_leaves_no_server_behind(root: Path, model_dir: Path) -> None:
    deployer = _deploy_process(root, _model_link(root, model_dir, "term"))
    deadline = time.monotonic() + 60
    while not _servers_of(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _servers_of(root), "the server never started"
    os.kill(deployer.pid, signal.SIGTERM)
    deployer.communicate(timeout=60)
    assert deployer.returncode != 0
    time.sleep(0.2)
    assert _servers_of(root) == []
    assert list_endpoints(root) == []


def test_a_reused_pid_is_not_taken_for_the_server(root: Path) -> None:
    record = {"name": "x", "pid": os.getpid(), "create_time": psutil.Process().create_time() - 5}
    assert not server_alive(record)
    assert server_alive({**record, "create_time": psutil.Process().create_time()})


def test_a_sigkilled_deployer_leaves_no_untracked_server(root: Path, model_dir: Path) -> None:
    """SIGKILL cannot be caught, so the server it was starting lives on; the pending file names it, and
    the next `endpoints stop` (or deploy of that name) stops it."""
    deployer = _deploy_process(root, _model_link(root, model_dir, "kill"))
    deadline = time.monotonic() + 60
    while not _servers_of(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(deployer.pid, signal.SIGKILL)
    deployer.communicate(timeout=30)
    orphans = _servers_of(root)
    assert len(orphans) == 1, "the half-started server should have outlived its SIGKILLed deployer"
    config = _config(root, root.parent)
    stopped = CliRunner().invoke(cli, ["endpoints", "stop", "race", "--config", str(config)])
    assert stopped.exit_code == 0 and "race: stopped" in stopped.output, stopped.output
    assert _servers_of(root) == [] and not (root / "endpoints" / "race.starting").exists()


def test_the_server_of_a_sigkilled_deploy_is_reaped_by_the_next_listing(root: Path, model_dir: Path) -> None:
    """Issue 23 item 3: no server may run unlisted after its deployer was killed; `endpoints list` (or
    any listing) stops it, since no live deployer holds the name's lock."""
    deployer = _deploy_process(root, _model_link(root, model_dir, "reap"))
    deadline = time.monotonic() + 60
    while not _servers_of(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(deployer.pid, signal.SIGKILL)
    deployer.communicate(timeout=30)
    assert len(_servers_of(root)) == 1
    listed = CliRunner().invoke(cli, ["endpoints", "list", "--config", str(_config(root, root.parent))])
    assert listed.exit_code == 0, listed.output
    assert _servers_of(root) == [] and not list((root / "endpoints").glob("*.starting"))


def test_a_server_whose_pid_was_never_recorded_is_found_by_its_launch_token(root: Path) -> None:
    """The deployer may die between starting the server and writing its pid: the token set in the
    server's environment (written to the pending file before the launch) still finds it."""
    from pipeline.local.endpoint_servers import TOKEN_VARIABLE, reap_orphans

    folder = root / "endpoints"
    folder.mkdir(parents=True)
    (folder / "lost.starting").write_text(json.dumps({"token": "feedface"}))
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, TOKEN_VARIABLE: "feedface"},
        start_new_session=True,
    )
    try:
        time.sleep(0.3)
        assert reap_orphans(root) == ["lost"]
        assert orphan.wait(timeout=15) is not None and not (folder / "lost.starting").exists()
    finally:
        orphan.kill()
