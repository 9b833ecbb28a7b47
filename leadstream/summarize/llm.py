"""An OpenAI-compatible chat-completions summarizer, with the built-in one as fallback.

Bounded concurrency, a timeout per call, retries with exponential backoff on 429/5xx and
network errors; any failure falls back to the built-in summary and says so (`summarizer`
column: `llm:<model>` or `builtin (llm failed: <reason>)`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import aiohttp

from leadstream.domain.daily import DayAggregate, fit_summary, sentences, summarize
from leadstream.domain.digest import DigestFacts
from leadstream.retry import Backoff, retry_after

#: the longest digest a model may write (the built-in one is about this long at most)
MAX_DIGEST = 1200

log = logging.getLogger(__name__)

#: both prompts ask for plain text: the summary and the digest are shown as they are (a
#: note, the digest panel, a message to the manager), where markdown shows as stray symbols
PLAIN = " Tulis teks biasa saja: tanpa markdown, tanpa poin-poin atau daftar bernomor."
PROMPT = (
    "Anda asisten tim sales. Tulis ringkasan singkat (2-3 kalimat, paling banyak 200 karakter, "
    "bahasa Indonesia) "
    "tentang aktivitas satu lead WhatsApp hari ini: apa yang ditanyakan, perubahan status, "
    "dan langkah berikutnya. Jangan mengarang fakta di luar data." + PLAIN
)
DIGEST_PROMPT = (
    "Anda asisten manajer sales. Tulis ringkasan harian tim (bahasa Indonesia, paling banyak "
    f"{MAX_DIGEST} karakter) dari data satu hari: lead baru, pesan, perubahan status, lead "
    "panas, lead yang menunggu balasan dan jumlah per status. Sebut nama lead yang penting. "
    "Jangan mengarang fakta di luar data." + PLAIN
)

_MARKUP = re.compile(r"(\*\*|__|`+|^#+\s*)", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+", re.MULTILINE)


def plain_text(text: str) -> str:
    """A model's answer as plain text: markdown emphasis, code marks, headings and list
    markers removed (models add them even when asked not to), lines trimmed."""
    text = _BULLET.sub("", _MARKUP.sub("", text))
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


class Summarizer:
    """Built-in only (no network)."""

    name = "builtin"
    #: whether a call waits on I/O (worth running several at once) or returns at once
    waits = False

    def __init__(self, tz: str) -> None:
        self.tz = tz

    async def __call__(self, agg: DayAggregate) -> tuple[str, str]:
        return summarize(agg, self.tz), self.name

    async def digest(self, facts: DigestFacts, builtin: str) -> tuple[str, str]:
        """The manager's digest of `facts` and who wrote it (`builtin`: the built-in text)."""
        return builtin, self.name

    def batch_limit(self, budget_seconds: float) -> int:
        """How many summaries may be asked for in one poll so that, even if every call
        takes its worst case, the batch ends within `budget_seconds` (the consumer's poll
        interval: past it the group evicts the summarizer, which then crash-loops)."""
        return 2000

    async def close(self) -> None:
        return None


class LLMSummarizer(Summarizer):
    waits = True

    def batch_limit(self, budget_seconds: float) -> int:
        # worst case of one summary: every attempt times out, with the back-offs between
        worst = (self.retries + 1) * self.timeout_seconds + sum(
            self.backoff * 2 ** i for i in range(self.retries))
        return max(1, min(2000, int(budget_seconds / worst) * self.concurrency))

    def __init__(self, tz: str, *, base_url: str, model: str, api_key: str | None,
                 concurrency: int = 8, timeout: float = 20.0, retries: int = 3,
                 backoff: float = 0.5) -> None:
        super().__init__(tz)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.sem = asyncio.Semaphore(concurrency)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self.backoff = backoff
        self._session: aiohttp.ClientSession | None = None
        self.concurrency = concurrency
        self.timeout_seconds = timeout
        self.calls = 0
        self.fallbacks = 0

    def _payload(self, agg: DayAggregate) -> dict[str, Any]:
        facts = agg.model_dump(mode="json", exclude={"lead_id", "lead_key", "workspace_id",
                                                     "closed", "version"})
        return self._messages(PROMPT, f"Data hari {agg.day.isoformat()}: {facts}")

    def _messages(self, system: str, user: str) -> dict[str, Any]:
        return {"model": self.model, "temperature": 0.2, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": user}]}

    async def _complete(self, payload: dict[str, Any], accept: Callable[[str], str]) -> str:
        """The model's answer, as `accept` takes it (`accept` raises ValueError to refuse a
        shape, which is not retried); 429, 5xx and network errors are retried with
        backoff, anything else raises."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        last: Exception | None = None
        backoff = Backoff(self.backoff, 30.0)
        wait: float | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(wait if wait is not None else backoff.next())
            wait = None
            try:
                async with self.sem:
                    self.calls += 1
                    async with self._session.post(self.url, json=payload,
                                                  headers=headers) as r:
                        if r.status == 429 or r.status >= 500:
                            last = RuntimeError(f"HTTP {r.status}")
                            if r.headers.get("Retry-After"):  # the provider says when
                                wait = retry_after(r.headers.get("Retry-After"),
                                                   backoff.next())
                            continue
                        if r.status != 200:
                            raise RuntimeError(f"HTTP {r.status}")  # not retried
                        data = await r.json()
                return accept(plain_text(str(data["choices"][0]["message"]["content"])))
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = exc
        raise RuntimeError(f"gave up after {self.retries + 1} attempts: {last!r}")

    async def _call(self, agg: DayAggregate) -> str:
        return await self._complete(self._payload(agg), _summary_shape)

    async def __call__(self, agg: DayAggregate) -> tuple[str, str]:
        try:
            return await self._call(agg), f"llm:{self.model}"
        except (RuntimeError, KeyError, IndexError, TypeError, ValueError) as exc:
            self.fallbacks += 1
            log.warning("LLM summary failed for %s %s, using the built-in one: %s",
                        agg.lead_key, agg.day, exc)
            return summarize(agg, self.tz), f"builtin (llm failed: {str(exc)[:200]})"

    async def digest(self, facts: DigestFacts, builtin: str) -> tuple[str, str]:
        """Written by the model from the facts, the built-in text as the fallback (and the
        reason recorded), exactly as the daily summaries."""
        payload = self._messages(DIGEST_PROMPT, f"Data hari {facts.day.isoformat()}: "
                                 f"{facts.model_dump(mode='json')}")
        try:
            return await self._complete(payload, _digest_shape), f"llm:{self.model}"
        except (RuntimeError, KeyError, IndexError, TypeError, ValueError) as exc:
            self.fallbacks += 1
            log.warning("LLM digest failed for %s %s, using the built-in one: %s",
                        facts.workspace_id, facts.day, exc)
            return builtin, f"builtin (llm failed: {str(exc)[:200]})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _summary_shape(text: str) -> str:
    text = fit_summary(text)
    if not text:
        raise RuntimeError("empty completion")
    if len(sentences(text)) < 2:
        # the same shape as the built-in summary, or that one (not retried)
        raise ValueError("the model's summary is not 2-3 sentences")
    return text


def _digest_shape(text: str) -> str:
    if not text:
        raise RuntimeError("empty completion")
    if len(text) > MAX_DIGEST:
        raise ValueError(f"the model's digest is longer than {MAX_DIGEST} characters")
    return text
