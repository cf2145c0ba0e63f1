"""A progress bar on stderr without a dependency.

On a terminal it redraws one line (``\\r``); when stderr is a file or a CI log it prints a
plain line at most every few seconds instead, so logs stay readable and small.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts finished requests out of a known total; safe to call from worker threads."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 28,
        log_every: float = 5.0,
    ) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.log_every = log_every
        self.label = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_log = 0.0

    def set_label(self, label: str) -> None:
        """What is running now, e.g. ``warm c=4 rep 2/5``."""
        with self._lock:
            self.label = label
            self._draw(force=False)

    def advance(self, n: int = 1) -> None:
        """``n`` more requests finished."""
        with self._lock:
            self.done = min(self.total, self.done + n)
            self._draw(force=self.done == self.total)

    def close(self) -> None:
        """End the bar's line so later output starts on a fresh one."""
        with self._lock:
            if self.enabled and self._tty:
                self.stream.write("\n")
                self.stream.flush()

    def _line(self) -> str:
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self._start
        return f"[{bar}] {self.done}/{self.total} {elapsed:5.1f}s {self.label}"

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self._line().ljust(78))
            self.stream.flush()
            return
        now = time.monotonic()
        if force or now - self._last_log >= self.log_every:
            self._last_log = now
            self.stream.write(self._line() + "\n")
            self.stream.flush()
