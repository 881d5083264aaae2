"""The one base of the failures a command reports as a single line (exit 1) instead of a traceback.

Each layer raises its own kind (``RegistryError``, ``PipelineError``, ``EndpointError``…) so callers can
tell them apart; deriving them all from ``DogpipeError`` lets the CLI catch "an expected failure" in one
clause, without importing either engine's modules to learn their error types.
"""

from __future__ import annotations


class DogpipeError(RuntimeError):
    """An expected failure whose message says what is wrong and what to do."""


class ExecutionInterrupted(KeyboardInterrupt):
    """An execution stopped by a signal; it is recorded ``Stopped`` and ``--resume`` finishes it.

    Declared here, not in the local engine, so the CLI can say how to resume without importing it."""

    def __init__(self, execution_id: str, reason: str) -> None:
        super().__init__(execution_id, reason)
        self.execution_id = execution_id
        self.reason = reason
