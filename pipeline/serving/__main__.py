"""``python -m pipeline.serving MODEL --host H --port P``: the same command as ``dogpipe serve``; the
local engine's Endpoint step starts servers this way."""

from __future__ import annotations

import sys

from pipeline.cli.main import cli


def main() -> None:
    cli.main(args=["serve", *sys.argv[1:]], prog_name="python -m pipeline.serving")


if __name__ == "__main__":
    main()
