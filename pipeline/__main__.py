"""``python -m pipeline``: the same as the ``dogpipe`` command."""

from pipeline.cli.main import main

main()
