"""The ``dogpipe`` command, one module per noun; ``pipeline.cli.main.main`` is the entry point."""
