"""Local endpoints: detached ``python -m pipeline.serving`` processes, one record file each.

``<root>/endpoints/<name>.json`` = ``{"name", "url", "pid", "model_data", "model_package_arn",
"started_at"}`` is how ``dogpipe predict --endpoint NAME`` finds a server that outlived the
``dogpipe run`` that started it. Starting an endpoint whose name is taken stops the old server first,
as an UpdateEndpoint replaces the old instances.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0


class EndpointError(RuntimeError):
    """An endpoint that is unknown, or a server that did not come up."""


def _folder(root: Path | str) -> Path:
    return Path(root) / "endpoints"


def write_endpoint(root: Path | str, record: dict[str, Any]) -> Path:
    path = _folder(root) / f"{record['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    temp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    temp.replace(path)
    return path


def read_endpoint(root: Path | str, name: str) -> dict[str, Any]:
    """The record of endpoint ``name``; raises :class:`EndpointError` listing the known ones."""
    path = _folder(root) / f"{name}.json"
    if not path.is_file():
        known = sorted(item.stem for item in _folder(root).glob("*.json")) if _folder(root).is_dir() else []
        raise EndpointError(
            f"no local endpoint {name!r} under {_folder(root)} (known: {', '.join(known) or 'none'})"
        )
    return json.loads(path.read_text())


def _is_server(pid: int) -> bool:
    """Whether ``pid`` is alive and still one of our servers (pids are reused)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    return "pipeline.serving" in cmdline.read_text().replace("\0", " ") if cmdline.exists() else True


def stop_endpoint(root: Path | str, name: str) -> bool:
    """Stop the server of ``name`` and forget it; True when a live server was stopped."""
    path = _folder(root) / f"{name}.json"
    if not path.is_file():
        return False
    record = json.loads(path.read_text())
    pid = int(record.get("pid", 0))
    stopped = False
    if pid and _is_server(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _is_server(pid):
            time.sleep(0.1)
        if _is_server(pid):
            os.killpg(pid, signal.SIGKILL)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_ping(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = STARTUP_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
            raise EndpointError(f"endpoint server exited with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    process.terminate()
    raise EndpointError(f"endpoint at {url} did not answer /ping within {timeout:.0f} s (log: {log})")


def start_endpoint(
    root: Path | str,
    name: str,
    model_path: Path,
    *,
    model_data: str,
    model_package_arn: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> dict[str, Any]:
    """Serve ``model_path`` (model.tar.gz or folder) as endpoint ``name``; returns its record."""
    stop_endpoint(root, name)
    port = port or _free_port(host)
    url = f"http://{host}:{port}"
    log = _folder(root) / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pipeline.serving", str(model_path), "--host", host, "--port", str(port)]
    if model_package_arn:  # replies name the registry version (group/N) rather than a weights hash
        command += ["--model-version", model_package_arn.partition("model-package/")[2] or model_package_arn]
    with log.open("ab") as stream:
        process = subprocess.Popen(
            command,
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=PACKAGE_ROOT,
            start_new_session=True,  # outlives `dogpipe run` and its Ctrl-C
        )
    wait_for_ping(url, process, log)
    record = {
        "name": name,
        "url": url,
        "pid": process.pid,
        "model_data": model_data,
        "model_package_arn": model_package_arn,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_endpoint(root, record)
    return record
