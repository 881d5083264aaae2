"""``python -m pipeline``: the same as the ``dogpipe`` command."""

from pipeline.cli import main

main()
