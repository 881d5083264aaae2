"""dogpipe: a SageMaker Pipelines DAG that fine-tunes a CNN on dog breeds, and a local engine to run it."""

__version__ = "0.1.0"
