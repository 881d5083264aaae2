"""The SageMaker container contract, in one place.

SageMaker tells a job where its inputs and outputs are through ``SM_*`` environment variables (training)
and fixed ``/opt/ml/...`` paths (processing, serving). The scripts read them only through these helpers,
and every script also takes a flag for each path whose default is the helper's answer, so the same script
runs in a SageMaker container, under the local engine (which sets the same variables), and by hand.

Nothing here imports torch: the contract must be readable before heavy imports, e.g. by ``launch.py``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

# The local engine runs each job in its own folder and names it here; in a container this is unset.
OPT_ML = os.environ.get("DOGPIPE_OPT_ML") or "/opt/ml"
DEFAULT_MODEL_DIR = f"{OPT_ML}/model"
DEFAULT_OUTPUT_DATA_DIR = f"{OPT_ML}/output/data"
DEFAULT_CHANNEL_ROOT = f"{OPT_ML}/input/data"
DEBUG_HOOK_CONFIG = f"{OPT_ML}/input/config/debughookconfig.json"
PROCESSING_INPUT = f"{OPT_ML}/processing/input"
PROCESSING_OUTPUT = f"{OPT_ML}/processing/output"
#: Processing jobs learn their cluster from this file (training jobs from ``SM_HOSTS``/``SM_CURRENT_HOST``).
PROCESSING_RESOURCE_CONFIG = f"{OPT_ML}/config/resourceconfig.json"
DEFAULT_HOST = "algo-1"
# A version's drift baseline (Evaluate writes it; Register, the monitoring job and the CLI read it) and
# the monitoring job's thresholds (Model Monitor's ``baseline_constraints``).
BASELINE_FILE = "baseline.json"
EMBEDDINGS_FILE = "baseline_embeddings.npy"
CONSTRAINTS_FILE = "constraints.json"
#: The model package's metadata key holding its baseline.json URI (Register writes it).
DRIFT_BASELINE_KEY = "drift_baseline"

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f", "none", ""}


def str2bool(value: str | bool | int) -> bool:
    """Parse a hyperparameter boolean.

    SageMaker passes every hyperparameter as a string (``"true"``/``"false"`` in the SDK, ``"True"`` from
    Python callers), so ``bool("false")`` would be wrong. Unknown spellings are an error, not ``False``.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


def model_dir() -> str:
    """Where a training job writes the model; SageMaker tars it into ``model.tar.gz``."""
    return _env("SM_MODEL_DIR", DEFAULT_MODEL_DIR)


def output_data_dir() -> str:
    """Where a training job writes extra outputs (``output.tar.gz``): history, profiler data."""
    return _env("SM_OUTPUT_DATA_DIR", DEFAULT_OUTPUT_DATA_DIR)


def channel(name: str) -> str:
    """The local folder of input channel ``name`` (``SM_CHANNEL_TRAIN`` for ``train``)."""
    return _env(f"SM_CHANNEL_{name.upper()}", f"{DEFAULT_CHANNEL_ROOT}/{name}")


def hosts() -> list[str]:
    """All hosts of the training cluster (``SM_HOSTS`` is a JSON list); one host when unset."""
    raw = os.environ.get("SM_HOSTS")
    if not raw:
        return [current_host()]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"SM_HOSTS is not a JSON list: {raw!r} ({error})") from None
    if not isinstance(value, list) or not all(isinstance(host, str) for host in value) or not value:
        raise ValueError(f"SM_HOSTS must be a non-empty JSON list of host names, got {raw!r}")
    return value


def current_host() -> str:
    """This container's host name within ``hosts()``."""
    return _env("SM_CURRENT_HOST", DEFAULT_HOST)


def num_gpus() -> int:
    """GPUs SageMaker gave this host (``SM_NUM_GPUS``); 0 when unset, so CPU is the safe default."""
    raw = _env("SM_NUM_GPUS", "0")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"SM_NUM_GPUS is not an integer: {raw!r}") from None


def hyperparameters_from_env() -> dict[str, Any]:
    """Hyperparameters from ``SM_HPS`` (a JSON object), or ``{}``.

    Values keep the JSON types SageMaker wrote; scripts still parse them with their argparse types,
    because tuning jobs pass the same values as ``--name value`` strings.
    """
    raw = os.environ.get("SM_HPS")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"SM_HPS is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"SM_HPS must be a JSON object, got {type(value).__name__}")
    return value


def hyperparameters_as_argv(hyperparameters: dict[str, Any]) -> list[str]:
    """Turn ``SM_HPS`` into ``--name value`` arguments, the form tuning jobs pass on the command line.

    Scripts prepend these to ``sys.argv[1:]`` so explicit command-line flags win over the environment.
    """
    argv: list[str] = []
    for name, value in hyperparameters.items():
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        if isinstance(value, bool):
            text = "true" if value else "false"
        argv += [f"--{name}", text]
    return argv


def processing_input(name: str) -> str:
    """``/opt/ml/processing/input/<name>``: where a processing job's input ``name`` is mounted."""
    return f"{PROCESSING_INPUT}/{name}"


def processing_output(name: str) -> str:
    """``/opt/ml/processing/output/<name>``: what a processing job uploads as output ``name``."""
    return f"{PROCESSING_OUTPUT}/{name}"


def processing_hosts() -> tuple[str, list[str]]:
    """``(current_host, hosts)`` of a processing job, from :data:`PROCESSING_RESOURCE_CONFIG`.

    SageMaker writes that file into every processing container; without it (a script run by hand) the
    job is one host, ``algo-1``. A file that names no hosts, or a current host outside them, is an error.
    """
    try:
        with open(PROCESSING_RESOURCE_CONFIG) as file:
            config = json.load(file)
    except FileNotFoundError:
        return DEFAULT_HOST, [DEFAULT_HOST]
    except json.JSONDecodeError as error:
        raise ValueError(f"{PROCESSING_RESOURCE_CONFIG} is not valid JSON: {error}") from None
    hosts = config.get("hosts") if isinstance(config, dict) else None
    current = config.get("current_host") if isinstance(config, dict) else None
    if not isinstance(hosts, list) or not hosts or not all(isinstance(host, str) for host in hosts):
        raise ValueError(f"{PROCESSING_RESOURCE_CONFIG}: hosts must be a non-empty list, got {hosts!r}")
    if current not in hosts:
        raise ValueError(f"{PROCESSING_RESOURCE_CONFIG}: current_host {current!r} is not one of {hosts}")
    return current, hosts


def configure_logging() -> None:
    """INFO lines with timestamps on stdout, where SageMaker jobs (CloudWatch) and the local engine's
    per-step logs read them; one format for every script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stdout
    )
