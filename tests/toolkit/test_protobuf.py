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
from pathlib import Path

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


def test_the_toolkits_run_paths_never_load_protobuf() -> None:
    """What the images run (``train``, the serving handler service) imports no protobuf at all, so the
    version the training job's requirements.txt installs cannot break the toolkit itself."""
    loaded = _python(
        "import importlib, json, sys\n"
        f"for name in {TOOLKIT_RUN_PATHS!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('google.protobuf'))))\n"
    )
    assert json.loads(loaded) == []


def test_smdebug_and_the_toolkits_protobuf_code_work_in_one_process(tmp_path: Path) -> None:
    """smdebug saves and reads a trace, and the toolkit's ``record_pb2`` round-trips a record, with all
    four toolkits imported in the same interpreter."""
    code = f"""
import importlib, torch
for name in {TOOLKIT_RUN_PATHS!r}: importlib.import_module(name)
import smdebug.pytorch as smd
from smdebug.trials import create_trial
from sagemaker_training import record_pb2
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
hook = smd.Hook(out_dir={str(tmp_path / "trace")!r}, save_config=smd.SaveConfig(save_interval=1),
                include_collections=["weights", "losses"])
hook.register_module(model)
loss_fn = torch.nn.CrossEntropyLoss()
hook.register_loss(loss_fn)
for step in range(2):
    loss_fn(model(torch.randn(8, 4)), torch.randint(0, 2, (8,))).backward()
hook.close()
trial = create_trial({str(tmp_path / "trace")!r})
record = record_pb2.Record()
record.features["x"].float32_tensor.values.extend([1.0, 2.0])
again = record_pb2.Record.FromString(record.SerializeToString())
import json
print(json.dumps([len(trial.tensor_names()), trial.steps(), list(again.features["x"].float32_tensor.values)]))
"""
    tensors, steps, values = json.loads(_python(code))
    assert tensors >= 3 and steps == [0, 1] and values == [1.0, 2.0]
