"""``python -m pipeline.serving MODEL --host H --port P``: the same command as ``dogpipe serve``; the
local engine's Endpoint step starts servers this way, with a lifeline to itself
(:mod:`pipeline.serving.lifeline`) held from the first line, before anything slow is imported."""

from __future__ import annotations

import sys

from pipeline.serving.lifeline import hold_lifeline


def main() -> None:
    hold_lifeline()
    from pipeline.cli.main import cli

    cli.main(args=["serve", *sys.argv[1:]], prog_name="python -m pipeline.serving")


if __name__ == "__main__":
    main()
