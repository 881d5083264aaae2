"""``train.py``'s command line: the declared hyperparameters (``hyperparameters.py``) plus where things are.

Hyperparameters come from ``SM_HPS`` first, then the command line, so explicit flags win; ``--batch-size``
and ``--batch_size`` both work, since tuning jobs pass ``--name value``. A name that is neither declared
nor a launcher setting (``sagemaker_*``, ``_tuning_objective_metric``) fails the job at start with one
line naming it and the known ones: a misspelt hyperparameter must not train with its default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

if __package__:  # imported as training_code.train_arguments (tests, the local engine's in-process runs)
    from . import contract
    from .debugger_hook import parse_collections
    from .hyperparameters import HYPERPARAMETERS, Hyperparameter, is_reserved, unknown_message, unknown_names
else:  # inside the training container: the source dir is the working directory
    import contract  # type: ignore[no-redef]
    from debugger_hook import parse_collections  # type: ignore[no-redef]
    from hyperparameters import (  # type: ignore[no-redef]
        HYPERPARAMETERS,
        Hyperparameter,
        is_reserved,
        unknown_message,
        unknown_names,
    )

log = logging.getLogger("dogpipe.train")
DESCRIPTION = "Fine-tune a torchvision classifier on the dog-breed ImageFolder (Training and Tuning jobs)."


class OneLineParser(argparse.ArgumentParser):
    """Errors as one line (``train.py: error: ...``), the line a job's failure reason shows."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _value_parser(hp: Hyperparameter):
    def parse(text: str) -> Any:
        try:
            return hp.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = hp.kind
    return parse


def _add(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*flags, dest=name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="train.py", description=DESCRIPTION, allow_abbrev=False)
    for hp in HYPERPARAMETERS.values():
        _add(parser, hp.name, type=_value_parser(hp), default=hp.default, choices=hp.choices, help=hp.help)
    # Not hyperparameters: where things are, and how many processes.
    _add(parser, "train", default=None, help="train split (default: SM_CHANNEL_TRAIN)")
    _add(parser, "valid", default=None, help="valid split (default: SM_CHANNEL_VALID)")
    _add(parser, "stats", default=None, help="stats.json + classes.json folder (default: SM_CHANNEL_STATS)")
    _add(parser, "model_dir", default=None, help="default: SM_MODEL_DIR")
    _add(parser, "output_data_dir", default=None, help="default: SM_OUTPUT_DATA_DIR")
    _add(parser, "debug_hook_config", default=contract.DEBUG_HOOK_CONFIG, help="platform hook config")
    _add(parser, "nproc_per_node", type=int, default=1, help="processes per host (spawned here)")
    return parser


def _flag_names(unknown: list[str]) -> list[str]:
    return [item[2:].split("=", 1)[0] for item in unknown if item.startswith("--")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The typed arguments; unknown hyperparameters end the process (exit 2) with one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env_argv = contract.hyperparameters_as_argv(contract.hyperparameters_from_env())
    parser = build_parser()
    args, unknown = parser.parse_known_args(env_argv + argv)
    names = _flag_names(unknown)
    if unknown_names(names):
        parser.error(unknown_message(unknown_names(names)))
    if names:
        log.info("ignoring launcher settings: %s", " ".join(name for name in names if is_reserved(name)))
    if args.nproc_per_node < 1:
        parser.error(f"--nproc_per_node must be at least 1, got {args.nproc_per_node}")
    args.train = args.train or contract.channel("train")
    args.valid = args.valid or contract.channel("valid")
    args.stats = args.stats or contract.channel("stats")
    args.model_dir = args.model_dir or contract.model_dir()
    args.output_data_dir = args.output_data_dir or contract.output_data_dir()
    args.collections = parse_collections(args.collections)
    return args


def hyperparameters_of(args: argparse.Namespace) -> dict[str, Any]:
    """The hyperparameters this run used (``model_info.json``)."""
    values = {name: getattr(args, name) for name in HYPERPARAMETERS}
    values["collections"] = list(values["collections"])
    return values
