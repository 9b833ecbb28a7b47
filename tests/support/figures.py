"""Figures the suite prints at its end (support/fixtures.pytest_terminal_summary): the fault
scenarios' and the fuzzers'."""

from __future__ import annotations

from typing import Any

#: figures of the fault scenarios run in this session
FIGURES: list[dict[str, Any]] = []
#: figures of the fuzzing runs in this session
FUZZ: list[dict[str, Any]] = []
