"""Errors of the local engine that the CLI turns into one-line messages."""

from __future__ import annotations

from pipeline.errors import DogpipeError


class DefinitionError(DogpipeError, ValueError):
    """A definition SageMaker would reject: unknown step reference, cycle, bad parameter, unsupported type."""


class NothingToResume(DefinitionError):
    """``--resume`` of an execution that already succeeded: said, and nothing is rewritten."""
