"""Walk a SageMaker pipeline definition and execute it on this machine.

The engine reads only the definition JSON (what ``CreatePipeline`` receives): parameters, steps in
dependency order (``DependsOn`` plus every step a ``Get``/``Std:JsonGet`` reads), condition branches
(steps nested in a Condition's ``IfSteps``/``ElseSteps`` run only on the chosen side), property files,
and each step's ``CacheConfig``. Each step's resolved arguments go to the runner of its type; its
Describe*-shaped properties are recorded and feed later expressions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipeline.definition.parameters import parameter_values
from pipeline.definition.reader import dag_problems, execution_order, own_arguments
from pipeline.local.attempts import Attempt
from pipeline.local.cache import StepCache, cache_enabled, cache_key
from pipeline.local.condition import PipelineFailed, evaluate_all, fail
from pipeline.local.context import EngineSettings, StepContext, arn
from pipeline.local.errors import DefinitionError, NothingToResume
from pipeline.local.executions import (
    Execution,
    ExecutionRecord,
    ExecutionRunning,
    ExecutionStore,
    mark_abandoned,
    now_iso,
    this_process,
)
from pipeline.local.expressions import ExpressionError, Scope, property_file_location, resolve
from pipeline.local.interrupt import ExecutionInterrupted, interrupt_reason, terminating_signals_interrupt
from pipeline.local.job_process import ENGINE_STOPPING, stop_running_jobs
from pipeline.local.retry import RetryPlan, exception_type
from pipeline.object_store import ObjectStore

StepRunner = Callable[[StepContext], dict[str, Any]]


def _runners() -> dict[str, StepRunner]:
    # Imported here: the tuning runner pulls in optuna, the registry the registry module.
    from pipeline.local.endpoint_steps import run_create_model, run_endpoint, run_endpoint_config
    from pipeline.local.processing import run_processing
    from pipeline.local.registry_step import run_register
    from pipeline.local.training import run_training
    from pipeline.local.tuning import run_tuning

    return {
        "Processing": run_processing,
        "Training": run_training,
        "Tuning": run_tuning,
        "RegisterModel": run_register,
        "Model": run_create_model,
        "EndpointConfig": run_endpoint_config,
        "Endpoint": run_endpoint,
    }


@dataclass
class PlannedStep:
    """A step of the definition with what decides when it may run."""

    name: str
    definition: Mapping[str, Any]
    depends_on: set[str]
    branch: tuple[str, bool] | None = None  # (condition step, outcome it needs)

    @property
    def type(self) -> str:
        return str(self.definition.get("Type"))


def plan(definition: Mapping[str, Any]) -> list[PlannedStep]:
    """Steps in an order that respects every dependency (definition order breaks ties), after the DAG
    check ``validate`` runs too (``reader.dag_problems``): a definition it refuses runs nothing."""
    problems = dag_problems(definition)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more; `dogpipe validate` lists them)" if len(problems) > 1 else ""
        raise DefinitionError(f"step {first.step!r}: {first.message}{more}")
    return [
        PlannedStep(
            node.name,
            node.raw,
            node.needs(),
            (node.parent, bool(node.needed_outcome)) if node.parent else None,
        )
        for node in execution_order(definition)
    ]


@dataclass
class ExecutionResult:
    execution: Execution
    status: str
    failure_reason: str | None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)


class LocalEngine:
    """Runs definitions; records every execution under ``settings.root``."""

    def __init__(self, settings: EngineSettings, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.echo = echo
        self.store = ObjectStore(settings.root)
        self.executions = ExecutionStore(settings.root)
        self.cache = StepCache(settings.root)

    def start(
        self, definition: Mapping[str, Any], pipeline_name: str, overrides: Mapping[str, Any] | None = None
    ) -> ExecutionResult:
        """Validate the definition and parameters, then run a new execution."""
        plan(definition)
        parameters = parameter_values(definition, overrides or {})
        execution = self.executions.create(pipeline_name, definition, parameters)
        self.echo(f"execution {execution.id} of {pipeline_name}")
        with execution.claim():
            return self._run(execution)

    def resume(self, execution_id: str) -> ExecutionResult:
        """Run what an earlier execution left undone; its succeeded steps are kept as they are.

        Refused while another engine runs it; a Succeeded execution is left untouched.
        """
        execution = self.executions.get(execution_id)
        try:
            lock = execution.claim()
        except ExecutionRunning as running:
            raise DefinitionError(str(running)) from None
        with lock:
            if execution.read_stored().get("status") == "Succeeded":
                raise NothingToResume(f"execution {execution_id} already succeeded; nothing to resume")
            execution.update(status="Executing", failure_reason=None, ended_at=None, **this_process())
            self.echo(f"resuming execution {execution.id}")
            return self._run(execution)

    def _run(self, execution: Execution) -> ExecutionResult:
        definition = execution.definition
        record = execution.load()
        steps = plan(definition)
        by_name = {step.name: step for step in steps}
        states: dict[str, dict[str, Any]] = {
            name: state
            for name, state in execution.step_states(record).items()
            if state.get("status") == "Succeeded"
        }

        def step_properties(name: str) -> Mapping[str, Any]:
            state = states.get(name)
            if not state or state.get("status") != "Succeeded":
                raise ExpressionError(f"step {name!r} has not succeeded, its properties cannot be read")
            return state["properties"]

        def property_file(step: str, name: str) -> Any:
            return self._read_property_file(by_name[step].definition, name, step_properties(step))

        scope = Scope(
            parameters=record.parameters,
            execution=_execution_variables(record),
            step_properties=step_properties,
            property_file=property_file,
        )
        try:
            ENGINE_STOPPING.clear()
            with terminating_signals_interrupt(on_signal=stop_running_jobs):
                self._run_steps(execution, steps, states, scope)
        except PipelineFailed as failure:
            return self._finish(execution, "Failed", str(failure))
        except StepFailed as failure:
            return self._finish(execution, "Failed", str(failure))
        except KeyboardInterrupt as interrupt:
            reason = interrupt_reason(interrupt)
            self._finish(execution, "Stopped", reason)
            raise ExecutionInterrupted(execution.id, reason) from None
        return self._finish(execution, "Succeeded", None)

    def _run_steps(
        self,
        execution: Execution,
        steps: list[PlannedStep],
        states: dict[str, dict[str, Any]],
        scope: Scope,
    ) -> None:
        for step in steps:
            if step.name in states:
                self.echo(f"[{step.name}] already succeeded in this execution, kept")
                continue
            if not self._should_run(step, states):
                state = {"name": step.name, "type": step.type, "status": "NotExecuted"}
                execution.write_step_state(step.name, state)
                states[step.name] = state
                continue
            states[step.name] = self._run_step(execution, step, scope)

    def _should_run(self, step: PlannedStep, states: Mapping[str, Mapping[str, Any]]) -> bool:
        if any(states.get(dependency, {}).get("status") == "NotExecuted" for dependency in step.depends_on):
            return False
        if step.branch:
            condition, needed = step.branch
            return states[condition]["properties"]["Outcome"] is needed
        return True

    def _run_step(self, execution: Execution, step: PlannedStep, scope: Scope) -> dict[str, Any]:
        started = time.monotonic()
        earlier = mark_abandoned(
            execution.step_state(step.name) or {}, "its engine ended (killed or crashed)"
        )
        state: dict[str, Any] = {
            "name": step.name,
            "type": step.type,
            "status": "Executing",
            "started_at": now_iso(),
            "started_ts": time.time(),  # orders the summary table; ISO seconds tie
            "attempts": list(earlier.get("attempts") or []),  # a resumed step keeps its history
        }
        execution.write_step_state(step.name, state)
        self.echo(f"[{step.name}] {step.type} ...")
        try:
            arguments = resolve(own_arguments(step.definition), scope)
            state["arguments"] = arguments
            if step.type == "Condition":
                outcome = evaluate_all(arguments.get("Conditions") or [])
                state["properties"] = {"Outcome": outcome}
                self.echo(f"[{step.name}] outcome: {str(outcome).lower()}")
            elif step.type == "Fail":
                fail(arguments)
            else:
                state.update(self._run_job(execution, step, arguments, state))
        except PipelineFailed as failure:
            self._record_failure(execution, state, started, str(failure))
            raise
        except KeyboardInterrupt as interrupt:
            self._record_failure(execution, state, started, interrupt_reason(interrupt))
            raise
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            self._record_failure(execution, state, started, message)
            raise StepFailed(f"step {step.name!r} failed: {message}") from error
        state.update(status="Succeeded", ended_at=now_iso(), duration_s=round(time.monotonic() - started, 2))
        execution.write_step_state(step.name, state)
        cached = f" (cached from {state['cache_hit']})" if state.get("cache_hit") else ""
        self.echo(f"[{step.name}] succeeded in {state['duration_s']:.1f} s{cached}")
        return state

    def _run_job(
        self, execution: Execution, step: PlannedStep, arguments: dict[str, Any], state: dict[str, Any]
    ) -> dict[str, Any]:
        """A cache hit, or attempts of the job until one succeeds or the retry policies give up."""
        enabled, expire_after = cache_enabled(step.definition)
        key = cache_key(step.type, arguments, self.store) if enabled else None
        if key:
            hit = self.cache.lookup(step.name, key, expire_after)
            if hit:
                return {"properties": hit["properties"], "cache_hit": hit["execution_id"], "cache_key": key}
        retries = RetryPlan(step.definition)
        while True:
            attempt = Attempt.begin(execution, step.name, state)
            context = StepContext(
                name=step.name,
                step_type=step.type,
                arguments=arguments,
                definition=step.definition,
                work_dir=attempt.folder,
                store=self.store,
                settings=self.settings,
                execution_id=execution.id,
                echo=self.echo,
            )
            try:
                properties = _runners()[step.type](context)
            except Exception as error:
                delay = retries.delay_after(exception_type(error))
                attempt.end("Failed", error, retry_in_s=delay)
                if delay is None:
                    raise
                self.echo(
                    f"[{step.name}] attempt {attempt.number} failed ({attempt.kind}); retry in {delay:g} s"
                )
                time.sleep(delay)
                continue
            except KeyboardInterrupt as interrupt:
                attempt.end("Stopped", interrupt)
                raise
            attempt.end("Succeeded")
            if key:
                self.cache.save(step.name, key, execution.id, properties)
            return {"properties": properties, "cache_hit": None, "cache_key": key}

    def _record_failure(
        self, execution: Execution, state: dict[str, Any], started: float, message: str
    ) -> None:
        state.update(
            status="Failed",
            ended_at=now_iso(),
            duration_s=round(time.monotonic() - started, 2),
            failure_reason=message,
        )
        execution.write_step_state(state["name"], state)
        self.echo(f"[{state['name']}] FAILED: {message}")

    def _read_property_file(self, step: Mapping[str, Any], name: str, properties: Mapping[str, Any]) -> Any:
        uri = property_file_location(step, name, properties)
        try:
            return json.loads(self.store.read_text(uri))
        except (OSError, ValueError) as error:
            raise ExpressionError(
                f"property file {name!r} of step {step.get('Name')!r} ({uri}) cannot be read: {error}"
            ) from None

    def _finish(self, execution: Execution, status: str, reason: str | None) -> ExecutionResult:
        execution.update(status=status, failure_reason=reason, ended_at=now_iso())
        return ExecutionResult(execution, status, reason, execution.step_states())


class StepFailed(RuntimeError):
    """A step failed; the execution stops with this message (which names the step)."""


def _execution_variables(record: ExecutionRecord) -> dict[str, Any]:
    name, execution_id = record.pipeline_name, record.id
    pipeline_arn = arn("pipeline", name)
    return {
        "PipelineExecutionId": execution_id,
        "PipelineExecutionArn": f"{pipeline_arn}/execution/{execution_id}",
        "PipelineName": name,
        "PipelineArn": pipeline_arn,
        "StartDateTime": record.started_at,
        "CurrentDateTime": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
