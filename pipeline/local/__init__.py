"""The local engine: runs a SageMaker pipeline definition JSON on this machine, without AWS or Docker.

``engine.LocalEngine`` walks the definition; one module per step kind executes a step the way the
SageMaker service would, against ``store.ObjectStore`` (a folder standing in for S3).
"""
