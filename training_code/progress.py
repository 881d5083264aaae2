"""Progress of a long loop in a container script, shown as its reader needs it.

A person running a script by hand in a terminal gets a tqdm bar on stderr (log lines printed while it
runs go above the bar, not through it). A job whose output goes to a file or a pipe (SageMaker's
CloudWatch log, the local engine's per-step log, CI) gets plain log lines every ``every`` items, as
before: a bar's carriage returns would turn a log into one unreadable line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import IO, Any


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default: stderr, where bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Count items done out of ``total``: a bar in a terminal, a log line every ``every`` items elsewhere.

    ``line`` formats the plain line from ``done``, ``total`` and the ``postfix`` values of the last
    :meth:`update` (e.g. ``"verified {done}/{total} files ({quarantined} quarantined)"``); without it
    the plain mode prints nothing (the loop prints its own lines, as the training epochs do). ``leave``
    False erases the bar when it closes (an inner loop's bar).
    """

    def __init__(
        self,
        total: int,
        description: str,
        *,
        log: logging.Logger | None = None,
        line: str | None = None,
        every: int = 1,
        unit: str = "it",
        terminal: bool | None = None,
        leave: bool = True,
    ) -> None:
        self.total = total
        self.done = 0
        self.postfix: dict[str, Any] = {}
        self._log, self._line, self._every = log, line, max(1, every)
        self._bar = None
        if is_terminal() if terminal is None else terminal:
            try:
                from tqdm import tqdm
            except ImportError:  # a container without tqdm: plain lines, never a failed job
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=leave
                )

    @property
    def is_bar(self) -> bool:
        return self._bar is not None

    def update(self, count: int = 1, **postfix: Any) -> None:
        before = self.done
        self.done += count
        self.postfix.update(postfix)
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(count)
        elif self._line and self._log and self.done // self._every > before // self._every:
            self._log.info(self._line.format(done=self.done, total=self.total, **self.postfix))

    def write(self, line: str) -> None:
        """Print ``line`` on stdout; above the bar when there is one, so the bar is not broken."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def logs_above_bars() -> Iterator[None]:
    """While a bar may be drawn, route the root logger's console lines through tqdm so they print above
    the bar instead of through it; does nothing when stderr is not a terminal (or tqdm is missing)."""
    if not is_terminal():
        yield
        return
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:
        yield
        return
    with logging_redirect_tqdm():
        yield
