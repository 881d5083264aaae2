"""Progress of a long step on the local engine's console (``dogpipe run``).

The engine writes its lines through ``echo`` (``click.echo`` from the CLI). When that goes to a
terminal, a step with countable work (tuning trials, training epochs, a processing job's counted
lines) shows a tqdm bar, with lines that must stay (a trial's hyperparameters and result, an epoch's
metrics) printed above it and passing news (a trial's latest epoch) in the bar itself. When it does
not (a log file, CI, a test's ``echo``), every line is echoed as before. The jobs' own output always
goes to their log files, never to a terminal, so job logs stay plain.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import click

Echo = Callable[[str], Any]

#: A job's counted-progress log line, as ``training_code/progress.py`` writes it where there is no
#: terminal: ``... INFO verified 500/8351 files (0 quarantined)``.
JOB_PROGRESS_LINE = re.compile(r" INFO (?P<what>[a-z]+) (?P<done>\d+)/(?P<total>\d+)\b(?P<rest>.*)$")


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
    """``total`` units of one step's work (None: unknown): a bar on a terminal, echoed lines elsewhere."""

    def __init__(self, echo: Echo, total: int | None, description: str, unit: str) -> None:
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

    def advance(self, line: str | None) -> None:
        """One unit done, with a line that stays (None: no line, e.g. a pruned trial)."""
        if line is not None:
            self.say(line)
        if self._bar is not None:
            self._bar.set_postfix_str("")
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class JobLines:
    """A job's log lines that the engine shows on its console: on a terminal, its counted-progress lines
    (``verified 500/8351 files``) move one bar instead of piling up (20 lines at dogImages' scale),
    other lines print above it; elsewhere every line is echoed as it comes."""

    def __init__(self, echo: Echo, prefix: str) -> None:
        self.echo, self.prefix = echo, prefix
        self.terminal = echoes_to_terminal(echo)
        self._bars: dict[str, Any] = {}

    def show(self, line: str) -> None:
        match = JOB_PROGRESS_LINE.search(line) if self.terminal else None
        if match is None:
            bar = next(reversed(self._bars.values()), None)
            if bar is not None:
                bar.write(f"{self.prefix}{line}", file=sys.stdout)
            else:
                self.echo(f"{self.prefix}{line}")
            return
        bar = self._bars.get(match["what"])
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=int(match["total"]), desc=f"{self.prefix}{match['what']}", file=sys.stdout)
            self._bars[match["what"]] = bar
        bar.set_postfix_str(match["rest"].strip(" ()"), refresh=False)
        bar.update(int(match["done"]) - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
