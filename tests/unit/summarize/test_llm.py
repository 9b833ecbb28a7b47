"""The LLM summarizer against a local fake chat-completions server (never the real API)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from leadstream.domain.daily import DayAggregate, summarize
from leadstream.summarize.llm import LLMSummarizer

AGG = DayAggregate(lead_id="l1", lead_key="ws1:+62", workspace_id="ws1", day=date(2026, 11, 1),
                   lead_name="Budi", inbound_count=2, outbound_count=1)


class FakeLLM:
    def __init__(self) -> None:
        self.script: list[Any] = []   # per call: int status, "slow", or text
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append({"body": body, "auth": request.headers.get("Authorization"),
                           "at": time.monotonic()})
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            step = self.script.pop(0) if self.script else "Ringkasan dari model. Lead bertanya harga."
            if step == "slow":
                await asyncio.sleep(2)
                step = "terlambat"
            await asyncio.sleep(0.05)
            if isinstance(step, tuple):  # (status, Retry-After)
                return web.json_response({"error": "x"}, status=step[0],
                                         headers={"Retry-After": step[1]})
            if isinstance(step, int):
                return web.json_response({"error": "x"}, status=step)
            return web.json_response({"choices": [{"message": {"content": step}}]})
        finally:
            self.in_flight -= 1


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeLLM, str]]:
    f = FakeLLM()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", f.handle)
    server = TestServer(app)
    await server.start_server()
    yield f, str(server.make_url("/v1"))
    await server.close()


def llm(url: str, **kw: Any) -> LLMSummarizer:
    return LLMSummarizer("Asia/Jakarta", base_url=url, model="test-model", api_key="k",
                         backoff=0.01, **kw)


async def test_success_uses_the_model_and_sends_the_facts(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    s = llm(url)
    text, used = await s(AGG)
    await s.close()
    assert (text, used) == ("Ringkasan dari model. Lead bertanya harga.", "llm:test-model")
    call = f.calls[0]
    assert call["auth"] == "Bearer k" and call["body"]["model"] == "test-model"
    assert "Budi" in call["body"]["messages"][1]["content"]


async def test_retries_5xx_and_429_then_succeeds(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = [500, 429, "Ok setelah retry. Dua kalimat."]
    s = llm(url, retries=3)
    assert await s(AGG) == ("Ok setelah retry. Dua kalimat.", "llm:test-model")
    await s.close()
    assert len(f.calls) == 3


async def test_a_429_waits_as_long_as_retry_after_says(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = [(429, "0.6"), "Ok setelah menunggu. Dua kalimat."]
    s = llm(url, retries=2)  # backoff 0.01 s: only Retry-After explains a 0.6 s wait
    assert await s(AGG) == ("Ok setelah menunggu. Dua kalimat.", "llm:test-model")
    await s.close()
    assert f.calls[1]["at"] - f.calls[0]["at"] >= 0.6


async def test_persistent_failure_falls_back_and_says_why(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = [503, 503, 503]
    s = llm(url, retries=2)
    text, used = await s(AGG)
    await s.close()
    assert text == summarize(AGG, "Asia/Jakarta")
    assert used.startswith("builtin (llm failed:") and "503" in used
    assert s.fallbacks == 1


async def test_client_error_is_not_retried(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = [401]
    s = llm(url, retries=3)
    _, used = await s(AGG)
    await s.close()
    assert len(f.calls) == 1 and "401" in used


async def test_timeout_falls_back(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = ["slow", "slow"]
    s = llm(url, retries=1, timeout=0.3)
    _, used = await s(AGG)
    await s.close()
    assert used.startswith("builtin (llm failed:")


async def test_concurrency_is_bounded(fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    s = llm(url, concurrency=3)
    results = await asyncio.gather(*(s(AGG) for _ in range(12)))
    await s.close()
    assert all(used == "llm:test-model" for _, used in results)
    assert f.max_in_flight == 3


def test_a_slow_model_gets_a_batch_that_fits_the_poll_interval() -> None:
    """Before: 2,000 windows per poll whatever the model; at 20 s a call and 8 at once that
    is over an hour, far past the consumer's 300 s poll interval (evicted, crash loop)."""
    from leadstream.summarize.llm import LLMSummarizer, Summarizer

    budget = 150.0
    slow = LLMSummarizer("Asia/Jakarta", base_url="http://127.0.0.1:9", model="m",
                         api_key=None, concurrency=8, timeout=20.0, retries=3, backoff=0.5)
    n = slow.batch_limit(budget)
    worst_one = 4 * 20.0 + 0.5 + 1.0 + 2.0
    assert 1 <= n <= 2000
    assert (n / 8) * worst_one <= budget  # every call at its worst still ends in time
    assert Summarizer("Asia/Jakarta").batch_limit(budget) == 2000  # built-in: no I/O
    hopeless = LLMSummarizer("Asia/Jakarta", base_url="http://x", model="m", api_key=None,
                             concurrency=1, timeout=600.0)
    assert hopeless.batch_limit(budget) == 1


async def test_a_long_answer_is_kept_to_three_sentences_in_200_characters(
        fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = ["Satu kalimat pertama. " + "Kalimat kedua cukup panjang. " * 3
                + "Kalimat kelima yang tidak muat " * 10 + "."]
    s = llm(url)
    text, used = await s(AGG)
    await s.close()
    assert used == "llm:test-model"
    assert text == "Satu kalimat pertama. Kalimat kedua cukup panjang. Kalimat kedua cukup panjang."


async def test_a_one_sentence_answer_falls_back_to_the_builtin_shape(
        fake: tuple[FakeLLM, str]) -> None:
    f, url = fake
    f.script = ["Hanya satu kalimat tanpa detail."]
    s = llm(url, retries=3)
    text, used = await s(AGG)
    await s.close()
    assert len(f.calls) == 1  # not retried: the model answered, badly
    assert text == summarize(AGG, "Asia/Jakarta") and "not 2-3 sentences" in used
