"""Schemathesis against the API's own OpenAPI document (`/api/openapi.json`), on the real
broker, Postgres and worker (issue #14).

For every operation, cases that fit the schema and cases that break it (schemathesis'
positive and negative generation), with every role's token, a token of no workspace and no
token, on existing leads and unknown ones. Properties: never a 5xx (the broker is up), and
the pipeline still works afterwards (a probe message becomes visible). Bounded:
`LEADSTREAM_API_FUZZ_CASES` (100) cases per operation and mode.
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from leadstream.config import Settings
from leadstream.db.registry import add_workspace
from leadstream.http.openapi import document
from tests.support.figures import FUZZ
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import TOKEN, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_OPERATION = int(os.environ.get("LEADSTREAM_API_FUZZ_CASES", "30"))
TOKENS = [TOKEN, "tok-sarah", "tok-brain", "tok-other-ws", "not-a-token", None]


def _cases() -> list[Any]:
    """The corpus: Hypothesis draws it through `@given` (fast, seeded by the derandomized
    settings); the cases are then sent from the test's own event loop."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(document())
    cases: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for result in schema.get_all_operations():
            op = result.ok()  # type: ignore[union-attr]  # Ok|Err: the schema is valid
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                @hsettings(max_examples=PER_OPERATION, database=None, derandomize=True,
                           phases=[Phase.generate], deadline=None,
                           suppress_health_check=list(HealthCheck))
                @given(case=op.as_strategy(generation_mode=mode))
                def collect(case: Any) -> None:
                    cases.append(case)

                collect()
    return cases


def _body(case: Any) -> Any:
    from schemathesis.core import NotSet

    return None if isinstance(case.body, NotSet) else case.body


async def test_the_api_never_answers_5xx_to_schema_driven_cases(
        pipelines: StartPipeline, settings: Settings,
        tmp_path: Path) -> None:
    p = await pipelines(settings)
    assert p.pool is not None and p.session is not None
    async with p.pool.acquire() as conn:
        for token, role in (("tok-sarah", "sarah-bot"), ("tok-brain", "brain-bot")):
            await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                                webhook_secret=None, api_token=token, role=role)
        await add_workspace(conn, workspace_id="ws9", phone_number_id=None,
                            webhook_secret=None, api_token="tok-other-ws")
    try:
        assert await p.message("6281355550001", "wamid.api-fuzz-seed") == 200
        lead = await eventually(lambda: p.fetchrow("SELECT lead_id FROM leads"))
        rng = random.Random(1129)
        cases = _cases()
        statuses: Counter[int] = Counter()
        problems: list[str] = []
        started = time.monotonic()
        for case in cases:
            path = str(case.formatted_path or case.path)
            if "lead_id" in (case.path_parameters or {}) and rng.random() < 0.5:
                path = str(case.path).replace("{lead_id}", str(lead["lead_id"]))
            bearer = rng.choice(TOKENS)
            headers = {k: str(v) for k, v in (case.headers or {}).items()}
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            body = _body(case)
            data = None if body is None else json.dumps(body, default=str).encode()
            if data is not None:
                headers.setdefault("Content-Type", "application/json")
            query = {k: (v if isinstance(v, str) else json.dumps(v, default=str))
                     for k, v in (case.query or {}).items()}
            try:
                async with p.session.request(case.method, f"{p.base}{path}", params=query,
                                             data=data, headers=headers) as r:
                    # a live stream does not end: its status and first event are the answer
                    text = (await r.content.readuntil(b"\n\n")).decode()[:200] \
                        if r.content_type == "text/event-stream" else await r.text()
                    statuses[r.status] += 1
            except ValueError:  # the client refuses a header value (control characters)
                statuses[0] += 1
                continue
            if r.status >= 500 and len(problems) < 10:
                problems.append(f"{r.status} {case.method} {path} {query} {data!r:.200}: "
                                f"{text[:200]}")
        seconds = time.monotonic() - started
        t0 = time.monotonic()
        assert await p.message("6281355550002", "wamid.api-fuzz-probe") == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM messages WHERE message_id = 'wamid.api-fuzz-probe'"), timeout=120)
        FUZZ.append({"what": "API (schemathesis)", "cases": len(cases),
                     "seconds": round(seconds, 1), "statuses": dict(statuses),
                     "5xx": sum(n for s, n in statuses.items() if s >= 500),
                     "probe_visible_s": round(time.monotonic() - t0, 2)})
        assert not problems, problems
        assert statuses[200] + statuses[202] > 0 and statuses[422] > 0
    finally:
        await p.stop()
