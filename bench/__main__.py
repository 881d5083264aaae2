"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks, print the table, write results.json.

Each benchmark measures dogpipe's real code path and its baseline side by side in this one run, so the
ratios hold on any machine even when absolute figures do not. ``--quick`` shrinks every size (a smoke
run, used by the tests); its figures are not meant to be quoted.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from bench.harness import RESULTS, Report

BENCHMARKS = {
    "startup": "bench.startup_bench",
    "stats": "bench.stats_bench",
    "train": "bench.train_bench",
    "endpoint": "bench.endpoint_bench",
    "definition": "bench.definition_bench",
    "e2e": "bench.e2e_bench",
    "scale": "bench.scale_bench",
    "preprocess": "bench.preprocess_scale_bench",
    "monitor": "bench.monitor_bench",
    "train_phases": "bench.train_phases_bench",
}
#: Run only when named with ``--only``: the whole pipeline at dogImages scale takes ~15 minutes.
ON_REQUEST = {"scale"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not figures")
    parser.add_argument("--output", default=str(RESULTS), help="results JSON path")
    args = parser.parse_args(argv)
    report = Report()
    started = time.time()
    for name in args.only or [name for name in BENCHMARKS if name not in ON_REQUEST]:
        module = importlib.import_module(BENCHMARKS[name])
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        module.run(report, quick=args.quick)
    print()
    print(report.table())
    report.write(Path(args.output), {"quick": args.quick, "seconds": time.time() - started})
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
