"""The command line, run in the test's process."""

from __future__ import annotations

import asyncio
from typing import Any

from click.testing import CliRunner

from leadstream.cli import main


async def acli(args: list[str], env: dict[str, str] | None = None) -> Any:
    """`cli` from an async test (the commands run their own event loop)."""
    return await asyncio.to_thread(cli, args, env)


def cli(args: list[str], env: dict[str, str] | None = None) -> Any:
    """The command line in this process (settings are cached per process: cleared here)."""
    from leadstream.config import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, args, env=env)
    finally:
        get_settings.cache_clear()
