"""A progress bar for long operator commands (replay): rewritten in place on a terminal, one
line every few seconds when the output is a file or a pipe (CI logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30,
                 every: float = 2.0, unit: str = "records") -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.width = width
        self.every = every
        self.started = time.monotonic()
        self.last = 0.0
        self.tty = self.stream.isatty()

    def render(self, done: int, goal: int) -> str:
        frac = min(1.0, done / goal) if goal else 1.0
        filled = int(frac * self.width)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = done / elapsed
        eta = (goal - done) / rate if rate and goal > done else 0.0
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {frac:4.0%} "
                f"{done:,}/{goal:,} {self.unit} {rate:,.0f}/s ETA {eta:,.0f}s")

    def __call__(self, done: int, goal: int) -> None:
        now = time.monotonic()
        final = done >= goal
        if self.tty:
            self.stream.write("\r" + self.render(done, goal))
        elif final or now - self.last >= self.every:
            self.stream.write(self.render(done, goal) + "\n")
        else:
            return
        self.last = now
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
