"""The API client against the fake Kapso API (its own aiohttp server): cursor paging at 100,
`since`/`until`, 429 with `Retry-After` honoured, a 5xx burst ridden out with back-off, a
refused key reported at once, and an API that stays down reported after bounded tries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer

from leadstream.reconcile.client import ApiError, KapsoApi
from leadstream.simulate.kapso_api import FakeKapsoApi, api_message

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
KEY = "k-test-0123456789"


def _fake(n: int) -> FakeKapsoApi:
    fake = FakeKapsoApi(keys={"p1": KEY})
    for i in range(n):
        at = T0 + timedelta(seconds=i)
        fake.add("p1", api_message(wa_id=f"62812{30000000 + i % 7:08d}", wamid=f"w{i}",
                                   text=f"m{i}", ts=int(at.timestamp())), created_at=at)
    return fake


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeKapsoApi, KapsoApi]]:
    fake = _fake(250)
    server = TestServer(fake.app())
    await server.start_server()
    api = KapsoApi(str(server.make_url("")), tries=4, backoff_first=0.05, backoff_cap=0.2)
    yield fake, api
    await api.close()
    await server.close()


async def _all(api: KapsoApi, since: datetime, until: datetime, key: str = KEY) -> list[list]:
    return [page async for page in api.messages("p1", key, since, until)]


async def test_pages_of_100_newest_first_cover_the_window_once(
        served: tuple[FakeKapsoApi, KapsoApi]) -> None:
    _, api = served
    pages = await _all(api, T0, T0 + timedelta(hours=1))
    assert [len(p) for p in pages] == [100, 100, 50]
    ids = [m["id"] for p in pages for m in p]
    assert ids == [f"w{i}" for i in reversed(range(250))]
    assert api.stats.pages == 3
    # the kapso fields the reconciler needs came (the fake gives none unless asked)
    assert {"direction", "status", "phone_number"} <= set(pages[0][0]["kapso"])


async def test_since_and_until_are_inclusive(served: tuple[FakeKapsoApi, KapsoApi]) -> None:
    _, api = served
    pages = await _all(api, T0 + timedelta(seconds=10), T0 + timedelta(seconds=19))
    assert sorted(int(m["id"][1:]) for p in pages for m in p) == list(range(10, 20))


async def test_429_waits_as_told_and_goes_on(served: tuple[FakeKapsoApi, KapsoApi]) -> None:
    fake, api = served
    fake.throttle_every, fake.retry_after = 2, "0.3"
    started = time.monotonic()
    pages = await _all(api, T0, T0 + timedelta(hours=1))
    assert sum(len(p) for p in pages) == 250
    assert fake.throttled >= 1 and api.stats.throttled == fake.throttled
    assert time.monotonic() - started >= 0.3 * fake.throttled


async def test_a_5xx_burst_is_ridden_out(served: tuple[FakeKapsoApi, KapsoApi]) -> None:
    fake, api = served
    fake.fail_next = 3
    pages = await _all(api, T0, T0 + timedelta(hours=1))
    assert sum(len(p) for p in pages) == 250 and fake.failed == 3
    assert api.stats.errors == {"http_503": 3}


async def test_an_api_down_for_good_is_reported_after_bounded_tries(
        served: tuple[FakeKapsoApi, KapsoApi]) -> None:
    fake, api = served
    fake.fail_next = 100
    with pytest.raises(ApiError) as err:
        await _all(api, T0, T0 + timedelta(hours=1))
    assert err.value.kind == "unavailable" and fake.failed == 4


async def test_a_wrong_key_is_refused_at_once(served: tuple[FakeKapsoApi, KapsoApi]) -> None:
    fake, api = served
    with pytest.raises(ApiError) as err:
        await _all(api, T0, T0 + timedelta(hours=1), key="wrong-key-000000")
    assert err.value.kind == "http_401" and fake.calls == 1
