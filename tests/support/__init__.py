"""Helpers and fixtures shared by the test modules (none of them is a test)."""

from __future__ import annotations

from typing import Any

from leadstream.config import Settings


def env_settings(**env: Any) -> Settings:
    """Settings from environment names (`LEADSTREAM_TOPIC_PREFIX=...`), as the processes
    read them; the environment itself fills in the rest."""
    make: Any = Settings
    settings: Settings = make(**env)
    return settings
