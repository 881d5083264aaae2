"""The ``tracking:`` block: one switch, a URI checked before anything runs, what the jobs get in the
definition (nothing that changes per execution, so step caching holds) and the IAM it needs."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config
from pipeline.config.tracking import config_digest, local_tracking_uri, store_uri
from pipeline.sagemaker.iam_policy import execution_role_policy, operator_policy

SERVER = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/dogpipe"


def _config(**tracking: object) -> dict:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["tracking"] = tracking
    return raw


def test_a_uri_that_is_no_tracking_store_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"tracking -> uri: .*not a tracking URI.*mlflow-tracking-server"):
        parse_config(_config(uri="arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"))


def test_off_is_one_switch_and_the_store_falls_back_to_the_engines_own(tmp_path) -> None:
    off = parse_config(_config(enabled=False, uri=SERVER))
    assert store_uri(off, local_tracking_uri(tmp_path)) is None
    default = parse_config(_config())
    assert store_uri(default, None) is None  # SageMaker without a server: nothing tracked
    assert store_uri(default, local_tracking_uri(tmp_path)) == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert store_uri(parse_config(_config(uri=SERVER)), "sqlite:///x") == SERVER


def test_the_config_digest_follows_the_pipeline_not_this_machine(tmp_path) -> None:
    raw = _config()
    same = {**raw, "local": {"root": str(tmp_path)}}
    changed = {**raw, "evaluation": {"accuracy_threshold": 0.5}}
    assert config_digest(parse_config(raw)) == config_digest(parse_config(same))
    assert config_digest(parse_config(raw)) != config_digest(parse_config(changed))


def _job_environments(cfg) -> dict[str, dict]:
    from pipeline.definition.code import package_code
    from pipeline.definition.document import build_definition

    definition = json.loads(build_definition(cfg, code=package_code()))
    steps = {step["Name"]: step["Arguments"] for step in definition["Steps"]}
    return {
        "Train": steps["Train"].get("Environment") or {},
        "Tune": steps["Tune"]["TrainingJobDefinition"].get("Environment") or {},
    }


def test_the_jobs_get_the_store_and_experiment_but_no_execution_id() -> None:
    environments = _job_environments(parse_config(_config(uri=SERVER, experiment="dogs")))
    assert environments["Train"]["DOGPIPE_TRACKING_KIND"] == "train"
    assert environments["Tune"]["DOGPIPE_TRACKING_KIND"] == "trial"
    for env in environments.values():
        assert env["MLFLOW_TRACKING_URI"] == SERVER and env["DOGPIPE_TRACKING_EXPERIMENT"] == "dogs"
        assert all(isinstance(value, str) for value in env.values())  # no per-execution expression
    assert _job_environments(parse_config(_config(enabled=False))) == {"Train": {}, "Tune": {}}


def test_a_managed_tracking_server_adds_sagemaker_mlflow_on_its_arn_to_both_roles() -> None:
    cfg = parse_config(_config(uri=SERVER))
    role = "arn:aws:iam::123456789012:role/dogpipe"
    for policy in (execution_role_policy(cfg, [], role), operator_policy(cfg, [role])):
        (statement,) = [s for s in policy["Statement"] if s["Sid"] == "ExperimentTracking"]
        assert statement["Action"] == ["sagemaker-mlflow:*"] and statement["Resource"] == [SERVER]
    plain = execution_role_policy(load_config(DEFAULT_CONFIG), [], role)
    assert not [s for s in plain["Statement"] if s["Sid"] == "ExperimentTracking"]
