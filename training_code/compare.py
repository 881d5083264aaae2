"""Processing job: score the candidate and the production model on the same test images.

    python compare.py [--candidate-dir DIR] [--test-dir DIR] [--output-dir DIR] --group GROUP
                      --production-endpoint NAME [--gate true|false] [--tolerance 0.01] [--alpha 0.05]

The same container contract as ``evaluate.py``: the candidate's ``model.tar.gz`` and the test split
arrive as processing inputs. The production model cannot be an input (there is none on a first run, and
which one it is is known only when the job runs), so the job finds it itself
(``production_model.py``: the stage's endpoint, else the newest approval) and fetches its artifact.

Writes ``comparison.json`` (``model_comparison.py``: status, both models' accuracy, weighted F1, size
and single-image latency, the deltas, McNemar's exact test, per-breed deltas worst first, the gate's
verdict) and ``registry_metadata`` inside it: the strings the Register step copies into the package's
customer metadata. The job succeeds whatever the verdict, so the pipeline stops at its named Fail step
with the numbers, not here with a traceback; only a candidate that cannot be scored fails it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__:  # imported as training_code.compare (tests, the step builder)
    from . import contract, production_model
else:  # run as a script inside the processing container
    import contract  # type: ignore[no-redef]
    import production_model  # type: ignore[no-redef]

#: What the job writes into ``--output-dir`` (the step's property file).
COMPARISON_FILE = "comparison.json"
#: The keys of ``registry_metadata`` in it, which the Register step copies into customer metadata.
REGISTRY_METADATA_KEYS = (
    "comparison_status",
    "production_version",
    "delta_accuracy",
    "delta_weighted_f1",
    "mcnemar_p",
    "gate_passed",
    "test_data",
)

log = logging.getLogger("compare")


def _scoring() -> Any:
    """``model_comparison`` (torch), imported when the job runs: the step builder reads this module's
    file name without loading torch."""
    if __package__:
        from . import model_comparison
    else:
        import model_comparison  # type: ignore[no-redef]
    return model_comparison


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The ``comparison.json`` content for the job's inputs and the registry as it is now."""
    model_comparison = _scoring()
    workers = args.num_workers
    candidate = model_comparison.score_model(args.candidate_dir, args.test_dir, args.batch_size, workers)
    facts = production_model.resolve_production(args.production_endpoint, args.group)
    production, reason = None, None
    if facts is None:
        reason = f"no model serves {args.production_endpoint} and group {args.group} has no Approved version"
    else:
        log.info(
            "production: version %s (%s) from %s", facts["version"], facts["source"], facts["package_arn"]
        )
        try:
            with tempfile.TemporaryDirectory(prefix="dogpipe-production-") as scratch:
                folder = production_model.fetch_model(facts["model_data_url"], Path(scratch))
                production = model_comparison.score_model(folder, args.test_dir, args.batch_size, workers)
        except (production_model.ProductionUnavailable, FileNotFoundError, ValueError, KeyError) as error:
            reason = f"production version {facts['version']} cannot be scored: {error}"
    comparison = model_comparison.compare(candidate, production, facts, reason=reason, alpha=args.alpha)
    comparison["gate"] = model_comparison.gate_verdict(
        comparison, enabled=args.gate, tolerance=args.tolerance, alpha=args.alpha
    )
    comparison["test_data"] = args.test_data_uri
    comparison["registry_metadata"] = registry_metadata(comparison)
    return comparison


def registry_metadata(comparison: dict[str, Any]) -> dict[str, str]:
    """The comparison as CustomerMetadataProperties values: non-empty strings of the characters the
    API allows (letters, digits, space and ``_.:/=+-@``), read with JsonGet by the Register step."""
    production = comparison.get("production") or {}
    delta = comparison.get("delta") or {}
    mcnemar = comparison.get("mcnemar") or {}

    def text(value: Any, spec: str) -> str:
        return "none" if value is None else format(value, spec)

    values = {
        "comparison_status": comparison["status"],
        "production_version": text(production.get("version"), "d"),
        "delta_accuracy": text(delta.get("accuracy"), "+.4f"),
        "delta_weighted_f1": text(delta.get("weighted_f1"), "+.4f"),
        "mcnemar_p": text(mcnemar.get("p_value"), ".4g"),
        "gate_passed": "true" if comparison["gate"]["passed"] else "false",
        "test_data": comparison.get("test_data") or "none",
    }
    return {key: values[key] for key in REGISTRY_METADATA_KEYS}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate-dir", type=Path, default=Path(contract.processing_input("model")))
    parser.add_argument("--test-dir", type=Path, default=Path(contract.processing_input("test")))
    parser.add_argument("--output-dir", type=Path, default=Path(contract.processing_output("comparison")))
    parser.add_argument("--group", required=True, help="The model package group.")
    parser.add_argument("--production-endpoint", required=True, help="The endpoint production serves on.")
    parser.add_argument("--gate", type=contract.str2bool, default=False, help="Whether a worse model blocks.")
    parser.add_argument("--tolerance", type=float, default=0.01, help="Accuracy a candidate may lose.")
    parser.add_argument("--alpha", type=float, default=0.05, help="McNemar significance level.")
    parser.add_argument("--test-data-uri", default=None, help="Where the test split came from (recorded).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=os.cpu_count() or 1, help="Decoding threads.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    contract.configure_logging()
    args = parse_args(argv)
    try:
        comparison = run(args)
    except KeyError as error:
        log.error("comparison failed: the candidate's model_info.json lacks the key %s", error)
        return 2
    except (FileNotFoundError, ValueError) as error:
        log.error("comparison failed: %s", error)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    target = args.output_dir / COMPARISON_FILE
    target.with_suffix(".tmp").write_text(json.dumps(comparison, indent=2) + "\n")
    target.with_suffix(".tmp").replace(target)
    print(f"comparison={comparison['status']} gate_passed={comparison['gate']['passed']}", flush=True)
    print(comparison["gate"]["message"], flush=True)
    log.info("wrote %s", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
