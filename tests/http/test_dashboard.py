"""The dashboard page in a real headless Chromium (Debian's `chromium`, driven by
Playwright): log in, filter, open a lead, and see a newly posted WhatsApp message appear
without a reload."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline import TOKEN, Pipeline, eventually

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: `make test` installs "
                    "Debian's chromium where apt-get can; without it the browser test skips")
async def test_login_filter_open_lead_and_live_refresh(pipeline: Pipeline,
                                                       tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    for i, name in enumerate(["Budi Santoso", "Siti Aminah", "Agus Salim"]):
        assert await pipeline.message(f"6281277700{i:03d}", f"wamid.dash.{i}", name=name,
                                      text=f"halo, saya {name}") == 200
    await eventually(lambda: pipeline.fetchrow("SELECT 1 FROM leads HAVING count(*) = 3"),
                     timeout=60)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1400, "height": 800})
        await page.goto(pipeline.base + "/")
        await page.fill("#token", "wrong-token")
        await page.click("text=Masuk / Log in")
        await page.wait_for_selector("text=Token tidak valid")
        await page.fill("#token", TOKEN)
        await page.click("text=Masuk / Log in")
        await page.wait_for_selector("#rows tr >> nth=2")
        assert "3" in await page.inner_text(".count[data-status='new']")

        await page.fill("input[name=q]", "Siti")
        await _until(lambda: page.locator("#rows tr").count(), 1)
        assert "Siti Aminah" in await page.inner_text("#rows")

        await page.click("#rows tr")
        await page.wait_for_selector("#detail h2:has-text('Siti Aminah')")
        assert "halo, saya Siti Aminah" in await page.inner_text("#timeline")

        # a new WhatsApp message appears in the open lead without a reload
        assert await pipeline.message("6281277700001", "wamid.dash.new", name="Siti Aminah",
                                      text="apakah masih ada promo?", ts=1_760_000_900) == 200
        await page.wait_for_selector("#timeline >> text=apakah masih ada promo?",
                                     timeout=20_000)
        await _until(lambda: _has(page, "#rows", "\t2\t"), True, timeout=20)
        shot = os.environ.get("LEADSTREAM_SCREENSHOT") or str(tmp_path / "dashboard.png")
        await page.fill("input[name=q]", "")
        await _until(lambda: page.locator("#rows tr").count(), 3)
        await page.screenshot(path=shot, full_page=True)
        await browser.close()

async def _has(page: Any, selector: str, text: str) -> bool:
    return text in await page.inner_text(selector)


async def _until(probe: Any, want: Any, timeout: float = 10.0) -> None:
    """Poll a page value (the page's CSP forbids the eval behind `wait_for_function`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await probe()) != want:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"page value {got!r}, wanted {want!r}")
        await asyncio.sleep(0.1)
