"""Progress of a long step on the local engine's console (``dogpipe run``).

The engine writes its lines through ``echo`` (``click.echo`` from the CLI). When that goes to a terminal,
a step with countable work (tuning trials) shows a tqdm bar, with lines that must stay (a trial's
hyperparameters and result) printed above it and passing news (a trial's latest epoch) in the bar
itself. When it does not (a log file, CI, a test's ``echo``), every line is echoed as before. The jobs'
own output always goes to their log files, never to a terminal, so job logs stay plain.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

Echo = Callable[[str], Any]


def echoes_to_terminal(echo: Echo) -> bool:
    """Whether ``echo`` writes to this process's stdout and that is an interactive terminal; any other
    ``echo`` (a test's list, a benchmark's no-op) is taken as not a terminal."""
    if echo is not click.echo and echo is not print:
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class StepProgress:
    """``total`` units of one step's work: a bar on a terminal, echoed lines elsewhere."""

    def __init__(self, echo: Echo, total: int, description: str, unit: str) -> None:
        self.echo = echo
        self._bar = None
        if echoes_to_terminal(echo):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit=unit, file=sys.stdout, dynamic_ncols=True)

    def say(self, line: str) -> None:
        """A line that stays: above the bar, or echoed."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            self.echo(line)

    def status(self, line: str) -> None:
        """Passing news: the bar's postfix, or an echoed line where there is no bar."""
        if self._bar is not None:
            self._bar.set_postfix_str(line.strip())
        else:
            self.echo(line)

    def advance(self, line: str) -> None:
        """One unit done, with a line that stays."""
        self.say(line)
        if self._bar is not None:
            self._bar.set_postfix_str("")
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
