"""Ctrl-C deferred to a safe point: work finishes the step under way, then stops cleanly."""
from __future__ import annotations

import signal
import threading


class DeferredInterrupt:
    """A context manager under which the first SIGINT (Ctrl-C) only sets ``requested``; a second raises
    KeyboardInterrupt at once. It does nothing outside the main thread (where no signal handler can be set) and
    where SIGINT is ignored (e.g. a job started in the background by a script)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
