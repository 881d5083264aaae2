"""Local endpoint lifecycle with real server processes and real signals.

Each server here is a real ``python -m pipeline.serving`` on the tiny model of ``serving_helpers``;
the deploys that race or get interrupted are separate Python processes, as two ``dogpipe`` commands.
"""

from __future__ import annotations

import contextlib
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
from pipeline.local.endpoint_records import (
    EndpointError,
    list_endpoints,
    read_endpoint,
    server_alive,
    stop_endpoint,
)
from pipeline.local.endpoint_servers import start_endpoint
from pipeline.local.endpoint_smoke import smoke_prediction
from tests.serving_helpers import image_bytes, write_model_dir

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
    """Live server processes whose log lives under ``root`` (each test's own servers; not their capture
    writer children, ``-m pipeline.serving.capture_child``, which end with them)."""
    found = []
    for process in psutil.process_iter(["cmdline", "open_files"]):
        try:
            arguments = process.info["cmdline"] or []
            cmdline = " ".join(arguments)
            server = "pipeline.serving" in arguments  # `python -m pipeline.serving ...`
            if server and str(root) in cmdline and process.status() != "zombie":
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


@pytest.mark.slow  # starts real servers (torch loads a model in each)
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


@pytest.mark.slow  # starts real servers (torch loads a model in each)
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


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())


def test_a_server_whose_deployer_is_sigkilled_while_it_starts_ends_itself(
    root: Path, model_dir: Path
) -> None:
    """SIGKILL cannot be caught, so the deployer cleans nothing up: the server's lifeline reads end of
    file and the server exits by itself, unlisted or not; the next listing removes the pending file."""
    deployer = _deploy_process(root, _model_link(root, model_dir, "kill"))
    assert _wait_for(lambda: bool(_servers_of(root))), "the server never started"
    (server,) = _servers_of(root)
    os.kill(deployer.pid, signal.SIGKILL)
    deployer.communicate(timeout=30)
    assert _wait_for(lambda: not server.is_running() or server.status() == "zombie", timeout=15)
    log = next((root / "endpoints").glob("race.*.log")).read_text()
    assert "ended before promoting it" in log
    assert (root / "endpoints" / "race.starting").exists()  # nothing ran under the lock since
    listed = CliRunner().invoke(cli, ["endpoints", "list", "--config", str(_config(root, root.parent))])
    assert listed.exit_code == 0 and "no local endpoints" in listed.output, listed.output
    assert _servers_of(root) == [] and not list((root / "endpoints").glob("*.starting"))


DIE_AT_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from pipeline.local import endpoint_servers
    root, model, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    # after-promotion: the server was promoted (it outlives us) but no record names it yet;
    # after-record: the record names the new server, the old one was never stopped.
    dies_in = {"after-promotion": "write_endpoint", "after-record": "stop_server"}[point]
    setattr(endpoint_servers, dies_in, die)
    endpoint_servers.start_endpoint(root, "race", model, model_data=str(model))
    """
)


@pytest.mark.slow  # starts real servers (torch loads a model in each)
@pytest.mark.parametrize("point", ["after-promotion", "after-record"])
def test_a_deployer_killed_after_the_promotion_leaves_only_servers_that_the_listing_shows(
    root: Path, model_dir: Path, point: str
) -> None:
    """The two moments when both servers outlive a SIGKILLed deployer: the pending file names both, and
    the next listing stops the one the record does not name; the other keeps serving."""
    old = _serve(root, "race", _model_link(root, model_dir, "old"))
    new_model = _model_link(root, model_dir, "new")
    killed = subprocess.run(
        [sys.executable, "-c", DIE_AT_SCRIPT, str(root), str(new_model), point],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(_servers_of(root)) == 2, "both servers should have outlived the deployer"
    rows = list_endpoints(root)
    (row,) = rows
    assert [process.pid for process in _servers_of(root)] == [row.pid] and row.alive
    record = read_endpoint(root, "race")
    if point == "after-promotion":
        assert record == old
    else:
        assert record["pid"] != old["pid"] and str(new_model) in " ".join(psutil.Process(row.pid).cmdline())
    assert not list((root / "endpoints").glob("*.starting"))


def test_a_server_whose_pid_was_never_recorded_is_found_by_its_launch_token(root: Path) -> None:
    """The deployer may die between starting the server and writing its pid: the token set in the
    server's environment (written to the pending file before the launch) still finds it."""
    from pipeline.local.endpoint_records import TOKEN_VARIABLE, reap_orphans

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


def _registered_model(root: Path, model_dir: Path, versions: int) -> None:
    """``versions`` packages of the tiny model in the engine's local registry and store."""
    from pipeline.registry import LocalRegistry

    stored = root / "s3" / "bucket" / "models" / "model"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.symlink_to(model_dir)
    for _ in range(versions):
        LocalRegistry(root).register("dogpipe-dog-breeds", "s3://bucket/models/model", "image")


@pytest.mark.slow
def test_sigkill_of_the_engine_while_the_deploy_pipeline_starts_the_new_server_leaves_no_unlisted_server(
    root: Path, model_dir: Path, tmp_path: Path
) -> None:
    """Issue 19: `models approve 2` runs the deploy pipeline through the engine; SIGKILL it once its
    Deploy step has launched the new server (the pending file names its pid). Afterwards every running
    server of this engine is one `endpoints list` shows, and prod still serves version 1."""
    _registered_model(root, model_dir, versions=2)
    config, runner = str(_config(root, tmp_path)), CliRunner()
    first = runner.invoke(cli, ["models", "approve", "1", "--config", config])
    assert first.exit_code == 0 and "dogpipe-prod serves dogpipe-dog-breeds/1" in first.output, first.output
    serving = read_endpoint(root, "dogpipe-prod")
    pending = root / "endpoints" / "dogpipe-prod.starting"

    def new_server_pid() -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return (json.loads(pending.read_text()).get("server") or {}).get("pid")
        return None

    engine = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "models", "approve", "2", "--config", config],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: new_server_pid() is not None, timeout=180), "the new server never started"
        new_pid = new_server_pid()
    finally:
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait(timeout=30)
    assert new_pid != serving["pid"]
    assert _wait_for(
        lambda: not psutil.pid_exists(new_pid) or psutil.Process(new_pid).status() == "zombie", 15
    )

    listed = runner.invoke(cli, ["endpoints", "list", "--config", config, "-o", "json"])
    shown = {row["pid"] for row in json.loads(listed.output) if row["alive"]}
    assert {process.pid for process in _servers_of(root)} == shown == {serving["pid"]}
    assert read_endpoint(root, "dogpipe-prod") == serving
    image = tmp_path / "dog.jpg"
    image.write_bytes(image_bytes((120, 90, 60)))
    predicted = runner.invoke(cli, ["predict", str(image), "--endpoint", "dogpipe-prod", "--config", config])
    assert predicted.exit_code == 0 and "model dogpipe-dog-breeds/1" in predicted.output, predicted.output


HOLDER_SCRIPT = (
    "import time; from pipeline.serving.lifeline import hold_lifeline; hold_lifeline(); time.sleep(60)"
)


@pytest.mark.parametrize("promoted", [False, True], ids=["abandoned", "promoted"])
def test_a_lifeline_ends_its_holder_at_end_of_file_unless_it_was_promoted(promoted: bool) -> None:
    from pipeline.local.endpoint_servers import Lifeline
    from pipeline.serving.lifeline import ABANDONED_EXIT_CODE, LIFELINE_VARIABLE

    lifeline = Lifeline()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT],
        cwd=REPO,
        env={**os.environ, LIFELINE_VARIABLE: str(lifeline.server_end)},
        pass_fds=(lifeline.server_end,),
    )
    try:
        lifeline.launched()
        time.sleep(0.5)  # the holder is watching by now (or would have exited on a bad descriptor)
        assert holder.poll() is None
        lifeline.promote() if promoted else lifeline.close()
        if promoted:
            with pytest.raises(subprocess.TimeoutExpired):
                holder.wait(timeout=1.5)
        else:
            assert holder.wait(timeout=10) == ABANDONED_EXIT_CODE
    finally:
        holder.kill()
        holder.wait()
