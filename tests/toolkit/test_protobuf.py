"""protobuf: smdebug 1.0.34 needs 3.20.x; sagemaker-training 5.1.4 declares >=5.28.1. Why 3.20.3 is safe.

Measured (training_code/README.md, "protobuf"): smdebug's generated ``*_pb2.py`` files fail to import
under protobuf 5 with its default (upb) backend ("Descriptors cannot be created directly"); they work
under protobuf 5 only with ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` set in every process. The
training toolkit's one use of protobuf is ``record_pb2`` (RecordIO-protobuf helpers for user scripts,
never imported by its ``train`` path), and it builds and serialises under 3.20.3. So dogpipe keeps the
pin smdebug declares, and these tests hold the toolkits, smdebug and protobuf 3.20.3 in one process.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

TOOLKIT_RUN_PATHS = (
    "sagemaker_training.trainer",
    "sagemaker_training.entry_point",
    "sagemaker_pytorch_container.training",
    "sagemaker_inference.transformer",
    "sagemaker_pytorch_serving_container.handler_service",
)


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_the_installed_protobuf_is_the_one_smdebug_declares() -> None:
    installed = importlib.metadata.version("protobuf")
    declared = [
        Requirement(r) for r in importlib.metadata.requires("smdebug") or [] if r.startswith("protobuf")
    ]
    assert declared and all(requirement.specifier.contains(installed) for requirement in declared)
    training = [Requirement(r) for r in importlib.metadata.requires("sagemaker-training") or []]
    assert any(r.name == "protobuf" and not r.specifier.contains(installed) for r in training), (
        "sagemaker-training's protobuf pin now admits smdebug's: revisit the README's protobuf note"
    )


SCRIPT = """
import importlib, json, sys
for name in {paths!r}: importlib.import_module(name)
loaded_by_toolkits = sorted(m for m in sys.modules if m.startswith("google.protobuf"))
import torch
import smdebug.pytorch as smd
from smdebug.trials import create_trial
from sagemaker_training import record_pb2
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
hook = smd.Hook(out_dir={trace!r}, save_config=smd.SaveConfig(save_interval=1),
                include_collections=["weights", "losses"])
hook.register_module(model)
loss_fn = torch.nn.CrossEntropyLoss()
hook.register_loss(loss_fn)
for step in range(2):
    loss_fn(model(torch.randn(8, 4)), torch.randint(0, 2, (8,))).backward()
hook.close()
trial = create_trial({trace!r})
record = record_pb2.Record()
record.features["x"].float32_tensor.values.extend([1.0, 2.0])
again = record_pb2.Record.FromString(record.SerializeToString())
print(json.dumps({{
    "loaded_by_toolkits": loaded_by_toolkits,
    "tensors": len(trial.tensor_names()),
    "steps": trial.steps(),
    "record": list(again.features["x"].float32_tensor.values),
}}))
"""


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The four toolkits, smdebug and protobuf in one fresh interpreter (what it found, as JSON)."""
    trace = str(tmp_path_factory.mktemp("smdebug") / "trace")
    return json.loads(_python(SCRIPT.format(paths=TOOLKIT_RUN_PATHS, trace=trace)))


def test_the_toolkits_run_paths_never_load_protobuf(one_process: dict) -> None:
    """What the images run (``train``, the serving handler service) imports no protobuf at all, so the
    version the training job's requirements.txt installs cannot break the toolkit itself."""
    assert one_process["loaded_by_toolkits"] == []


def test_smdebug_and_the_toolkits_protobuf_code_work_in_one_process(one_process: dict) -> None:
    """smdebug saves and reads a trace, and the toolkit's ``record_pb2`` round-trips a record, with all
    four toolkits imported in the same interpreter."""
    assert one_process["tensors"] >= 3 and one_process["steps"] == [0, 1]
    assert one_process["record"] == [1.0, 2.0]
