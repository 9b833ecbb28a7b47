"""The browser tests' Chromium and polling a page."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def until(probe: Any, want: Any, timeout: float = 10.0) -> None:
    """Poll a page value (the page's CSP forbids the eval behind `wait_for_function`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await probe()) != want:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"page value {got!r}, wanted {want!r}")
        await asyncio.sleep(0.1)
