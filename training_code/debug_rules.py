"""DebugRules processing job: evaluate the Debugger rules and the profiler summary of one training job.

Inputs (container paths; each has a flag):
  /opt/ml/processing/input/debug                              the smdebug trace (may be absent or empty)
  /opt/ml/processing/input/training_output/output.tar.gz     train.py's SM_OUTPUT_DATA_DIR, tarred:
                                                              history.json, profiler/, maybe tensors/
Outputs:
  /opt/ml/processing/output/rules/rules.json                 a PropertyFile for the pipeline's gate
  /opt/ml/processing/output/rules/profiler_summary.json

``rules.json``::

    {"rules": [{"rule", "status": "IssuesFound"|"NoIssuesFound"|"Error"|"NotRun", "first_step",
                "evidence", "parameters", "fail_pipeline"}],
     "blocking_issues": <fail_pipeline rules with IssuesFound>, "errors": <rules with Error>,
     "trace": <where the trace was read, or null>}

A rule whose data is missing (hook off, collection not saved) is ``Error`` with a reason and never
blocks: the gate fails a pipeline on evidence of a problem, not on absent evidence. A wrong rule name or
parameter, on the other hand, is a configuration mistake and fails the job with a message naming it.

``--rules`` takes JSON ``{rule_name: {"enabled": bool, "fail_pipeline": bool, "parameters": {...}}}``;
rules not named run with defaults and do not block.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

try:  # package layout (tests, local engine) or side by side in the container
    from . import profiler_rules
    from .contract import configure_logging, processing_input, processing_output
    from .dogrules import ERROR, ISSUES_FOUND, NOT_RUN, RULES, evaluate_rule
except ImportError:  # pragma: no cover - container layout
    import profiler_rules  # type: ignore[no-redef]
    from contract import configure_logging, processing_input, processing_output  # type: ignore[no-redef]
    from dogrules import ERROR, ISSUES_FOUND, NOT_RUN, RULES, evaluate_rule  # type: ignore[no-redef]

log = logging.getLogger("debug_rules")

RULES_FILE = "rules.json"
PROFILER_SUMMARY_FILE = "profiler_summary.json"
SETTING_KEYS = {"enabled", "fail_pipeline", "parameters"}


class RulesConfigError(ValueError):
    """``--rules`` names an unknown rule or key, or a parameter a rule does not take."""


def parse_rule_settings(text: str | None) -> dict[str, dict[str, Any]]:
    """Every known rule with its settings; unnamed rules are enabled, non-blocking, with defaults."""
    try:
        raw = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise RulesConfigError(f"--rules is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise RulesConfigError("--rules must be a JSON object {rule_name: settings}")
    unknown = sorted(set(raw) - set(RULES))
    if unknown:
        raise RulesConfigError(f"--rules: unknown rule(s) {unknown}; known: {sorted(RULES)}")
    settings = {}
    for name in RULES:
        given = raw.get(name) or {}
        bad = sorted(set(given) - SETTING_KEYS)
        if bad:
            raise RulesConfigError(f"--rules {name}: unknown key(s) {bad}; known: {sorted(SETTING_KEYS)}")
        settings[name] = {
            "enabled": bool(given.get("enabled", True)),
            "fail_pipeline": bool(given.get("fail_pipeline", False)),
            "parameters": dict(given.get("parameters") or {}),
        }
    return settings


def extract_training_output(path: Path, into: Path) -> Path | None:
    """Unpack output.tar.gz (``path`` may be the file or its folder); None when there is none."""
    archive = path / "output.tar.gz" if path.is_dir() else path
    if not archive.is_file():
        return None
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"{archive}: not a readable tar.gz ({error})") from None
    return into


def find_trace(debug_dir: Path, training_output: Path | None) -> Path | None:
    """The trace folder: the Debugger input if it holds one, else ``tensors/`` inside the job output."""
    candidates = [debug_dir]
    if training_output is not None:
        candidates.append(training_output / "tensors")
    for candidate in candidates:
        if (candidate / "index").is_dir() or (candidate / "events").is_dir():
            return candidate
    return None


def evaluate_rules(trace: Path | None, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """rules.json's content for one trace (None: no trace)."""
    trial = None
    if trace is not None:
        from smdebug.trials import create_trial

        trial = create_trial(str(trace))
    results = []
    for name, setting in settings.items():
        if not setting["enabled"]:
            result = {
                "rule": name,
                "status": NOT_RUN,
                "first_step": None,
                "evidence": {"reason": "disabled in the configuration"},
                "parameters": setting["parameters"],
            }
        elif trial is None:
            result = {
                "rule": name,
                "status": ERROR,
                "first_step": None,
                "evidence": {"reason": "no smdebug trace found (was the Debugger hook off?)"},
                "parameters": setting["parameters"],
            }
        else:
            try:
                result = evaluate_rule(trial, name, setting["parameters"])
            except ValueError as error:  # a parameter a rule does not take: the user's mistake
                raise RulesConfigError(str(error)) from None
            except Exception as error:
                log.exception("rule %s failed", name)
                result = {
                    "rule": name,
                    "status": ERROR,
                    "first_step": None,
                    "evidence": {"reason": f"{type(error).__name__}: {error}"},
                    "parameters": setting["parameters"],
                }
        result["fail_pipeline"] = setting["fail_pipeline"]
        results.append(result)
    return {
        "rules": results,
        "blocking_issues": sum(1 for r in results if r["fail_pipeline"] and r["status"] == ISSUES_FOUND),
        "errors": sum(1 for r in results if r["status"] == ERROR),
        "trace": str(trace) if trace else None,
    }


def summarize_profiler(training_output: Path | None, overrides: dict[str, Any] | None) -> dict[str, Any]:
    folder = training_output / "profiler" if training_output else None
    if folder is None or not (folder / "meta.json").is_file():
        return {
            "rules": [],
            "issues": 0,
            "overview": None,
            "error": "no profiler/ in the training output (was the profiler off?)",
        }
    return profiler_rules.summarize(folder, overrides)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, allow_nan=False))
    tmp.replace(path)


def run(
    debug_dir: Path, training_output: Path, output_dir: Path, rules: str | None, profiler: str | None
) -> dict:
    settings = parse_rule_settings(rules)
    try:
        profiler_overrides = json.loads(profiler) if profiler else None
    except json.JSONDecodeError as error:
        raise RulesConfigError(f"--profiler-rules is not JSON: {error}") from None
    with tempfile.TemporaryDirectory(prefix="dogpipe-rules-") as scratch:
        extracted = extract_training_output(training_output, Path(scratch))
        trace = find_trace(debug_dir, extracted)
        report = evaluate_rules(trace, settings)
        try:
            summary = summarize_profiler(extracted, profiler_overrides)
        except ValueError as error:
            if "unknown" in str(error):
                raise RulesConfigError(str(error)) from None
            summary = {"rules": [], "issues": 0, "overview": None, "error": str(error)}
    write_json(output_dir / RULES_FILE, report)
    write_json(output_dir / PROFILER_SUMMARY_FILE, summary)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--debug-dir", type=Path, default=Path(processing_input("debug")))
    parser.add_argument("--training-output", type=Path, default=Path(processing_input("training_output")))
    parser.add_argument("--output-dir", type=Path, default=Path(processing_output("rules")))
    parser.add_argument("--rules", default=None, help="JSON {rule: {enabled, fail_pipeline, parameters}}")
    parser.add_argument("--profiler-rules", default=None, help="JSON {ProfilerRule: {parameter: value}}")
    args, unknown = parser.parse_known_args(argv)
    configure_logging()
    if unknown:
        log.warning("ignoring unknown arguments %s", unknown)
    try:
        report = run(args.debug_dir, args.training_output, args.output_dir, args.rules, args.profiler_rules)
    except (RulesConfigError, ValueError) as error:
        print(f"debug_rules: {error}", file=sys.stderr)
        return 2
    for rule in report["rules"]:
        print(f"rule={rule['rule']} status={rule['status']} first_step={rule['first_step']}")
    print(f"blocking_issues={report['blocking_issues']} errors={report['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
