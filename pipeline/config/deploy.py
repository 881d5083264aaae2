"""The deploy half of the config: how an approved version reaches its endpoint safely.

Kept beside ``pipeline/config/`` (which uses these under ``deploy:`` and at the top level) so that
module stays one screen per concern. Same rules: unknown keys are errors, units are in the names.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: EventBridge schedule expressions (rules and Scheduler): ``rate(1 day)``, ``cron(0 3 ? * MON *)``.
SCHEDULE_PATTERN = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\((\S+ ){5}\S+\))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerlessConfig(_Strict):
    """Serverless inference instead of instances (no blue/green: SageMaker updates it in place)."""

    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 3072
    max_concurrency: int = Field(5, ge=1, le=200)


class AsyncInferenceConfig(_Strict):
    """Asynchronous inference: requests queue, results land under ``output_s3_uri``."""

    output_s3_uri: str = Field(..., pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
    max_concurrent_invocations_per_instance: int = Field(4, ge=1, le=1000)


class AlarmThresholds(_Strict):
    """CloudWatch alarms `dogpipe upsert` creates; either one in ALARM during an update rolls it back."""

    errors_5xx: int = Field(1, ge=1, description="Invocation5XXErrors per period that trip the alarm.")
    model_latency_ms: int = Field(2000, ge=1, description="Average ModelLatency per period (ms).")
    period_seconds: int = Field(60, ge=10)
    evaluation_periods: int = Field(1, ge=1)


class GuardrailsConfig(_Strict):
    """Deployment guardrails of an endpoint update on SageMaker: blue/green traffic shifting, then
    ``wait_seconds`` of baking during which either alarm rolls all traffic back to the old fleet."""

    # CANARY and LINEAR shift a part of the fleet (at most 50% of the instances per AWS): they need
    # deploy.initial_instance_count >= 2. ALL_AT_ONCE still bakes the new fleet under the alarms.
    traffic: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "ALL_AT_ONCE"
    canary_percent: int = Field(10, ge=1, le=50, description="CANARY: share of capacity shifted first.")
    linear_step_percent: int = Field(25, ge=5, le=50, description="LINEAR: share shifted per step.")
    wait_seconds: int = Field(300, ge=0, le=3600, description="Baking time between traffic shifts.")
    termination_wait_seconds: int = Field(120, ge=0, le=3600, description="Old fleet kept after.")
    alarms: AlarmThresholds = AlarmThresholds()


OnApproval = Literal["off", "prod", "staging"]


def check_schedule(value: str | None) -> str | None:
    if value is not None and not SCHEDULE_PATTERN.match(value):
        raise ValueError(f"not a schedule expression (rate(1 day) or cron(0 3 ? * MON *)): {value!r}")
    return value
