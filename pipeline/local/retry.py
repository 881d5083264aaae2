"""A step's ``RetryPolicies`` applied locally, as SageMaker Pipelines applies them.

SageMaker retries a failed step when the failure's exception type is listed by one of its policies
(AWS "Retry Policy for Pipeline Steps"): ``IntervalSeconds`` (default 1) before the first retry, each
later wait ``BackoffRate`` (default 2.0) times the one before, and either ``MaxAttempts`` retries (1–20)
or retries until ``ExpireAfterMin`` minutes after the step started. Each policy counts its own retries.

How local failures map to SageMaker's exception types (the engine has no service to throttle it):

==============================  ===================================================================
``SageMaker.JOB_INTERNAL_ERROR`` the job's process was ended by a signal the engine did not send
                                 (killed from outside, out of memory): the "instance" failed under the
                                 job, what SageMaker reports as InternalServerError. Not retried for
                                 Tuning steps, whose trials SageMaker retries internally (AWS's note).
``SageMaker.CAPACITY_ERROR``     the job's process could not be started for lack of resources
                                 (``EAGAIN``/``ENOMEM`` from fork/exec): no capacity for the job.
``SageMaker.RESOURCE_LIMIT``     the disk is full or over quota (``ENOSPC``/``EDQUOT``) while staging
                                 inputs or publishing outputs.
``Step.SERVICE_FAULT``           any other I/O error of the local store while staging or publishing.
``Step.THROTTLING``              never raised locally.
==============================  ===================================================================

A job whose script exits non-zero is SageMaker's ``AlgorithmError`` (a ``ClientError``): no exception
type matches it and it is never retried, as on SageMaker. Bad arguments are not retried either.
The retries SageMaker makes on its own for ``Step.SERVICE_FAULT``/``Step.THROTTLING`` when a step
has no policy (their count is not documented) are not reproduced.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JOB_INTERNAL_ERROR = "SageMaker.JOB_INTERNAL_ERROR"
CAPACITY_ERROR = "SageMaker.CAPACITY_ERROR"
RESOURCE_LIMIT = "SageMaker.RESOURCE_LIMIT"
SERVICE_FAULT = "Step.SERVICE_FAULT"
THROTTLING = "Step.THROTTLING"
EXCEPTION_TYPES = (SERVICE_FAULT, THROTTLING, JOB_INTERNAL_ERROR, CAPACITY_ERROR, RESOURCE_LIMIT)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class RetryPolicyError(ValueError):
    """A RetryPolicies entry SageMaker would reject."""


def exception_type(error: BaseException) -> str | None:
    """The SageMaker exception type of a failed attempt, or None when no retry policy can match it."""
    declared = getattr(error, "exception_type", None)
    if declared:
        return str(declared)
    if isinstance(error, OSError):
        return RESOURCE_LIMIT if error.errno in _NO_SPACE else SERVICE_FAULT
    return None


@dataclass
class RetryPolicy:
    """One entry of a step's ``RetryPolicies``."""

    exception_types: tuple[str, ...]
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_attempts: int | None = None
    expire_after_min: float | None = None
    retries: int = field(default=0, compare=False)

    @classmethod
    def parse(cls, step: str, entry: Mapping[str, Any]) -> RetryPolicy:
        types = tuple(entry.get("ExceptionType") or ())
        unknown = [name for name in types if name not in EXCEPTION_TYPES]
        if not types or unknown:
            raise RetryPolicyError(
                f"step {step!r}: RetryPolicies ExceptionType must list some of {', '.join(EXCEPTION_TYPES)}"
                + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else "")
            )
        max_attempts, expire = entry.get("MaxAttempts"), entry.get("ExpireAfterMin")
        if (max_attempts is None) == (expire is None):
            raise RetryPolicyError(
                f"step {step!r}: a retry policy needs exactly one of MaxAttempts, ExpireAfterMin"
            )
        if max_attempts is not None and not 1 <= int(max_attempts) <= 20:
            raise RetryPolicyError(f"step {step!r}: MaxAttempts must be 1-20, got {max_attempts}")
        return cls(
            exception_types=types,
            interval_seconds=float(entry.get("IntervalSeconds", 1)),
            backoff_rate=float(entry.get("BackoffRate", 2.0)),
            max_attempts=None if max_attempts is None else int(max_attempts),
            expire_after_min=None if expire is None else float(expire),
        )

    def next_delay(self, started: float, now: float) -> float | None:
        """Seconds to wait before the next retry, or None when this policy has no retry left."""
        if self.max_attempts is not None and self.retries >= self.max_attempts:
            return None
        if self.expire_after_min is not None and now - started > self.expire_after_min * 60:
            return None
        return self.interval_seconds * self.backoff_rate**self.retries


class RetryPlan:
    """The retry policies of one step run, counting retries from the step's start."""

    def __init__(self, step: Mapping[str, Any]) -> None:
        self.step_type = str(step.get("Type"))
        name = str(step.get("Name"))
        self.policies = [RetryPolicy.parse(name, entry) for entry in step.get("RetryPolicies") or []]
        self.started = time.monotonic()

    def delay_after(self, kind: str | None) -> float | None:
        """Seconds before retrying a failure of type ``kind``; None when the step fails for good."""
        if kind is None or (kind == JOB_INTERNAL_ERROR and self.step_type == "Tuning"):
            return None
        for policy in self.policies:
            if kind in policy.exception_types:
                delay = policy.next_delay(self.started, time.monotonic())
                if delay is not None:
                    policy.retries += 1
                return delay
        return None
