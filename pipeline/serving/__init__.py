"""``dogpipe serve``: the SageMaker inference protocol (``GET /ping``, ``POST /invocations``) on this
machine, answering through ``training_code/inference.py`` — the handlers the SageMaker container runs.

- ``model_source`` turns MODEL (a ``model.tar.gz``, a model directory, or a registry ``group/version``)
  into a directory to load.
- ``app`` is the Starlette application: limits, content types, errors as 4xx JSON, model calls in a
  bounded thread pool.
- ``server`` starts uvicorn and announces the URL once it accepts connections.
- ``client`` sends an image to an endpoint (HTTP here, ``InvokeEndpoint`` on SageMaker) for
  ``dogpipe predict`` and the local endpoints' checks.

The click command ``dogpipe serve`` lives with the CLI (``pipeline/cli/main.py``); ``python -m
pipeline.serving`` (``__main__``, what the local engine's Endpoint step starts) runs that same command.
"""
