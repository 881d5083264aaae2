"""A starting endpoint server's lifeline to the process that starts it.

A local endpoint server is detached (its own session) so that it outlives the deploy that started it.
Until that deploy has checked it and made it the endpoint's server, though, nothing else knows it: a
deployer SIGKILLed at that moment (nothing can catch a SIGKILL) used to leave it running, unlisted.

So the deployer hands the server the read end of a pipe whose write end only it holds
(:data:`LIFELINE_VARIABLE` names the descriptor). A thread of the server blocks on it from the first
line of ``python -m pipeline.serving``: one byte (:data:`PROMOTED`) means the deployer promoted the
server, which then lets go of the pipe and lives on; end of file first means the deployer is gone
(killed, crashed, or it gave up on the server), and the server exits at once, whatever it was doing.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping

#: The descriptor number of the lifeline's read end in the server's environment.
LIFELINE_VARIABLE = "DOGPIPE_LIFELINE_FD"
#: What the deployer writes once the server is the endpoint's: after it, end of file changes nothing.
PROMOTED = b"P"
#: The exit code of a server whose deployer went away before promoting it.
ABANDONED_EXIT_CODE = 75


def hold_lifeline(environ: Mapping[str, str] | None = None) -> threading.Thread | None:
    """Watch the lifeline that ``environ`` names (none: nothing to do); returns the watching thread."""
    value = (os.environ if environ is None else environ).get(LIFELINE_VARIABLE)
    if not value:
        return None
    try:
        descriptor = int(value)
        os.set_inheritable(descriptor, False)  # this server's own children must not hold it
    except (ValueError, OSError) as error:
        print(f"dogpipe: {LIFELINE_VARIABLE}={value!r} is no open descriptor ({error})", file=sys.stderr)
        os._exit(ABANDONED_EXIT_CODE)
    watcher = threading.Thread(target=_watch, args=(descriptor,), name="dogpipe-lifeline", daemon=True)
    watcher.start()
    return watcher


def _watch(descriptor: int) -> None:
    try:
        word = os.read(descriptor, len(PROMOTED))
    except OSError:
        word = b""
    finally:
        os.close(descriptor)
    if word == PROMOTED:
        return
    print(
        "dogpipe: the deploy that started this server ended before promoting it; exiting",
        file=sys.stderr,
        flush=True,
    )
    os._exit(ABANDONED_EXIT_CODE)  # nothing to clean: no one was told about this server
