"""The Debugger rules on traces written by a real smdebug hook around a tiny torch model.

Each crafted bad run must make its rule fire, and a healthy run must leave every rule quiet: one
parametrised fire/quiet matrix. Traces are built once per module (a few dozen steps each)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
smd = pytest.importorskip("smdebug.pytorch")

from smdebug.core.modes import ModeKeys  # noqa: E402
from smdebug.trials import create_trial  # noqa: E402

from training_code import debug_rules  # noqa: E402
from training_code.debugger_hook import HookSettings, create_debugger, register_model  # noqa: E402
from training_code.dogrules import RULES, evaluate_rule  # noqa: E402

nn = torch.nn


LOSS_ONLY = {"memorize", "forgotten_step"}


def write_trace(out_dir: Path, kind: str, epochs: int) -> Path:
    """Train a 4-layer MLP on a linear 4-class problem with the hook saving every step.

    kind: ``healthy`` (fresh batches, Kaiming init), ``tiny_init`` (weights std 1e-3),
    ``forgotten_step`` (no ``optimizer.step()``), ``memorize`` (32 training samples with random labels,
    so the training loss keeps falling while the validation loss rises)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    dims = [16, 32, 32, 32, 4]
    layers: list[nn.Module] = []
    for index in range(4):
        linear = nn.Linear(dims[index], dims[index + 1])
        if kind == "tiny_init":
            nn.init.normal_(linear.weight, std=1e-3)
        else:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()] if index < 3 else [linear]
    model = nn.Sequential(*layers)

    # The loss-only scenarios save only losses: writing tensors is most of a test's time.
    collections = ["losses"] if kind in LOSS_ONLY else ["losses", "gradients", "relu_input"]
    hook = smd.Hook(
        out_dir=str(out_dir), save_config=smd.SaveConfig(save_interval=1), include_collections=collections
    )
    loss_fn = nn.CrossEntropyLoss()
    register_model(hook, model, loss_fn)  # relu_input by module type, as train.py's hook does

    true_weights = torch.randn(16, 4, generator=generator)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(size, 16, generator=generator)
        return x, (x @ true_weights).argmax(1)

    memorize_x = torch.randn(32, 16, generator=generator)
    memorize_y = torch.randint(0, 4, (32,), generator=generator)
    valid_x, valid_y = batch(256)
    if kind == "memorize":
        valid_y = torch.randint(0, 4, (256,), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3 if kind != "tiny_init" else 1e-2)
    for _ in range(epochs):
        hook.set_mode(ModeKeys.TRAIN)
        for _ in range(4):
            x, y = (memorize_x, memorize_y) if kind == "memorize" else batch(64)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            if kind != "forgotten_step":
                optimizer.step()
        hook.set_mode(ModeKeys.EVAL)
        with torch.no_grad():
            for start in range(0, 256, 64):
                loss_fn(model(valid_x[start : start + 64]), valid_y[start : start + 64])
    hook.close()
    return out_dir


EPOCHS = {"healthy": 6, "tiny_init": 3, "forgotten_step": 3, "memorize": 13}


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        kind: write_trace(tmp_path_factory.mktemp(kind) / "trace", kind, epochs)
        for kind, epochs in EPOCHS.items()
    }


@pytest.fixture(scope="module")
def trials(traces: dict[str, Path]) -> dict[str, object]:
    return {kind: create_trial(str(path)) for kind, path in traces.items()}


@pytest.fixture(scope="module")
def verdicts(trials: dict[str, object]) -> dict[str, dict[str, dict]]:
    return {kind: {name: evaluate_rule(trial, name) for name in RULES} for kind, trial in trials.items()}


@pytest.mark.parametrize(
    ("kind", "rule", "expected"),
    [
        *[("healthy", rule, "NoIssuesFound") for rule in RULES],
        ("tiny_init", "vanishing_gradient", "IssuesFound"),
        ("tiny_init", "poor_weight_initialization", "IssuesFound"),
        ("forgotten_step", "loss_not_decreasing", "IssuesFound"),
        ("memorize", "overfit", "IssuesFound"),
        ("memorize", "overtraining", "IssuesFound"),
    ],
)
@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_rule_fire_quiet_matrix(verdicts: dict, kind: str, rule: str, expected: str) -> None:
    result = verdicts[kind][rule]
    assert result["status"] == expected, json.dumps(result, indent=1)[:2000]
    if expected == "IssuesFound":
        assert isinstance(result["first_step"], int)
    json.dumps(result)  # rules.json must be able to hold it


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_activation_check_reads_relu_inputs_named_as_aws_expects(trials: dict[str, object]) -> None:
    """The hook saves ReLU inputs as ``<module>_relu_input`` (AWS's default regex), before the ReLU."""
    names = trials["healthy"].tensor_names(regex=[".*relu_input"])
    assert names == ["1_relu_input", "3_relu_input", "5_relu_input"]
    inputs = trials["healthy"].tensor("1_relu_input").value(0)
    assert (inputs < 0).any()  # a pre-activation, not the ReLU's (in place) output
    finding = _activation_findings(evaluate_rule(trials["tiny_init"], "poor_weight_initialization"))[0]
    assert finding["fires"] and finding["ratio"] > 1e3


def _smooth_images(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Natural-image-like inputs: low-frequency noise (neighbouring pixels correlate, as in photos)."""
    low = torch.randn(count, 3, 6, 6, generator=generator)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return images, torch.randint(0, 3, (count,), generator=generator)


def write_cnn_trace(out_dir: Path, weight_scale: float) -> Path:
    """A few training steps of torchvision's squeezenet1_1, initialised as torchvision does (then scaled
    by ``weight_scale``), through the hook train.py uses (``create_debugger``), saving every step."""
    from training_code.models import build_model

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = build_model("squeezenet1_1", 3, pretrained=False)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(weight_scale)
    criterion = nn.CrossEntropyLoss()
    settings = HookSettings(
        out_dir=out_dir, save_interval=1, collections=("losses", "gradients", "relu_input")
    )
    debugger = create_debugger(model, criterion, enabled=True, config_path=None, settings=settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    debugger.set_mode("train")
    for _ in range(3):
        x, y = _smooth_images(8, 48, generator)
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    debugger.close()
    return out_dir


@pytest.fixture(scope="module")
def cnn_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return {
        kind: evaluate_rule(
            create_trial(str(write_cnn_trace(tmp_path_factory.mktemp(kind) / "trace", scale))),
            "poor_weight_initialization",
        )
        for kind, scale in {"healthy": 1.0, "weights_x1e-3": 1e-3}.items()
    }


def _activation_findings(result: dict) -> list[dict]:
    return [f for f in result["evidence"]["findings"] if f["check"] == "activation_variance_vs_median"]


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_healthy_torchvision_cnn_has_commensurate_activation_variances(cnn_verdicts: dict) -> None:
    """torchvision's own squeezenet1_1 initialisation: every layer within 10x of the median layer."""
    healthy = cnn_verdicts["healthy"]
    assert healthy["evidence"]["activation_layers"] == 25  # every ReLU before the head
    findings = _activation_findings(healthy)
    assert len(findings) == 3 and not any(f["fires"] for f in findings), json.dumps(findings, indent=1)


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_torchvision_cnn_with_tiny_weights_fires_poor_weight_initialization(cnn_verdicts: dict) -> None:
    result = cnn_verdicts["weights_x1e-3"]
    assert result["status"] == "IssuesFound" and result["first_step"] == 0
    assert _activation_findings(result)[0]["fires"]


def test_pretrained_backbone_activations_are_not_judged_as_an_initialisation(tmp_path: Path) -> None:
    from training_code.models import build_model

    model = build_model("squeezenet1_1", 3, pretrained=False)
    settings = HookSettings(out_dir=tmp_path / "trace", save_interval=1, collections=("losses", "relu_input"))
    debugger = create_debugger(
        model, nn.CrossEntropyLoss(), enabled=True, config_path=None, settings=settings, pretrained=True
    )
    model(torch.zeros(2, 3, 32, 32))
    debugger.close()
    assert create_trial(str(tmp_path / "trace")).tensor_names(regex=[".*relu_input"]) == []


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_evidence_carries_the_figures(verdicts: dict) -> None:
    vanishing = verdicts["tiny_init"]["vanishing_gradient"]
    assert vanishing["first_step"] == 0
    assert all(value < 1e-7 for value in vanishing["evidence"]["vanishing_tensors"].values())
    overtraining = verdicts["memorize"]["overtraining"]["evidence"]["evaluations"]
    assert overtraining[-1]["evaluations_without_valid_optimum"] >= 10
    overfit = verdicts["memorize"]["overfit"]["evidence"]["evaluations"][-1]
    assert overfit["valid_loss"] > 1.1 * overfit["train_loss"]
    assert verdicts["healthy"]["vanishing_gradient"]["evidence"]["smallest"]["mean_abs"] > 1e-7


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_parameters_override_defaults_and_change_the_verdict(trials: dict[str, object]) -> None:
    trial = trials["healthy"]
    strict = evaluate_rule(trial, "vanishing_gradient", {"threshold": 1e3})
    assert strict["status"] == "IssuesFound" and strict["parameters"]["threshold"] == 1e3
    with pytest.raises(ValueError, match=r"overfit: unknown parameter.*patiense"):
        evaluate_rule(trial, "overfit", {"patiense": 2})
    with pytest.raises(ValueError, match="num_steps='ten'"):
        evaluate_rule(trial, "loss_not_decreasing", {"num_steps": "ten"})


def test_trace_without_the_needed_tensors_is_an_error_not_a_pass(tmp_path: Path) -> None:
    hook = smd.Hook(out_dir=str(tmp_path / "trace"), include_collections=["losses"])
    loss_fn = nn.MSELoss()
    hook.register_loss(loss_fn)
    model = nn.Linear(2, 1)
    hook.register_module(model)
    loss_fn(model(torch.ones(1, 2)), torch.zeros(1, 1))
    hook.close()
    result = evaluate_rule(create_trial(str(tmp_path / "trace")), "vanishing_gradient")
    assert result["status"] == "Error" and "gradients" in result["evidence"]["reason"]


# -- the DebugRules processing script ---------------------------------------------------------------------
def _training_output(tmp_path: Path, trace: Path | None) -> Path:
    """output.tar.gz as train.py's SM_OUTPUT_DATA_DIR would be tarred: history, profiler, maybe tensors."""
    source = tmp_path / "output_data"
    (source / "profiler").mkdir(parents=True)
    (source / "history.json").write_text(json.dumps({"epochs": []}))
    (source / "profiler" / "meta.json").write_text(json.dumps({"num_workers": 1, "cpu_count": 2}))
    if trace is not None:
        shutil.copytree(trace, source / "tensors")
    folder = tmp_path / "training_output"
    folder.mkdir()
    with tarfile.open(folder / "output.tar.gz", "w:gz") as tar:
        for child in source.iterdir():
            tar.add(child, arcname=child.name)
    return folder


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_script_reads_the_trace_inside_the_job_output_and_counts_blocking_issues(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    training_output = _training_output(tmp_path, traces["tiny_init"])
    settings = {"vanishing_gradient": {"fail_pipeline": True}, "overfit": {"enabled": False}}
    out = tmp_path / "rules"
    argv = [
        "--debug-dir",
        str(tmp_path / "absent"),
        "--training-output",
        str(training_output),
        "--output-dir",
        str(out),
        "--rules",
        json.dumps(settings),
    ]
    assert debug_rules.main(argv) == 0
    report = json.loads((out / "rules.json").read_text())
    by_name = {rule["rule"]: rule for rule in report["rules"]}
    assert set(by_name) == set(RULES)
    assert (
        by_name["vanishing_gradient"]["status"] == "IssuesFound"
        and by_name["vanishing_gradient"]["fail_pipeline"]
    )
    assert by_name["poor_weight_initialization"]["status"] == "IssuesFound"  # fires, but only warns
    assert by_name["overfit"]["status"] == "NotRun"
    assert report["blocking_issues"] == 1
    summary = json.loads((out / "profiler_summary.json").read_text())
    assert {rule["rule"] for rule in summary["rules"]} >= {"Dataloader", "StepOutlier"}


def test_script_without_a_trace_reports_errors_that_do_not_block(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    argv = [
        "--debug-dir",
        str(tmp_path / "absent"),
        "--training-output",
        str(_training_output(tmp_path, None)),
        "--output-dir",
        str(out),
        "--rules",
        json.dumps({"vanishing_gradient": {"fail_pipeline": True}}),
    ]
    assert debug_rules.main(argv) == 0
    report = json.loads((out / "rules.json").read_text())
    assert {rule["status"] for rule in report["rules"]} == {"Error"}
    assert "hook off" in report["rules"][0]["evidence"]["reason"]
    assert report["blocking_issues"] == 0 and report["errors"] == len(RULES)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"vanishing_gradients": {}}, "unknown rule"),
        ({"overfit": {"fail": True}}, "unknown key"),
        ({"overfit": {"parameters": {"patiense": 1}}}, "patiense"),
    ],
)
def test_script_rejects_a_bad_rules_config_and_writes_nothing(
    traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: dict, message: str
) -> None:
    out = tmp_path / "rules"
    argv = [
        "--debug-dir",
        str(traces["healthy"]),
        "--training-output",
        str(tmp_path / "none"),
        "--output-dir",
        str(out),
        "--rules",
        json.dumps(rules),
    ]
    assert debug_rules.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_frozen_backbone_saves_only_the_parameters_it_trains(tmp_path: Path) -> None:
    """Weights and biases of frozen layers are the pretrained file's at every step: not saved; the
    trained head's are, and gradients and losses as before."""
    from training_code.models import build_model

    model = build_model("squeezenet1_1", 3, pretrained=False, freeze="features")
    criterion = nn.CrossEntropyLoss()
    settings = HookSettings(
        out_dir=tmp_path / "trace", save_interval=1, collections=("losses", "gradients", "weights", "biases")
    )
    debugger = create_debugger(model, criterion, enabled=True, config_path=None, settings=settings)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    debugger.set_mode("train")
    for _ in range(2):
        optimizer.zero_grad()
        criterion(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
        optimizer.step()
    debugger.close()
    trial = create_trial(str(tmp_path / "trace"))
    trained = {f"SqueezeNet_{name}" for name, p in model.named_parameters() if p.requires_grad}
    assert trained == {"SqueezeNet_classifier.1.weight", "SqueezeNet_classifier.1.bias"}
    saved = {*trial.tensor_names(collection="weights"), *trial.tensor_names(collection="biases")}
    assert saved == trained
    assert trial.tensor_names(regex=["gradient/.*"]) and trial.tensor_names(collection="losses")
