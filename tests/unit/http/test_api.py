"""Read API over the replica: filters, sorts, keyset pagination under concurrent inserts,
status counts, query validation and the OpenAPI document (against real Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadstream.config import Settings
from leadstream.http.models import LeadQuery
from tests.support.pipeline import TOKEN, Pipeline
from tests.support.seed import SEED, N

pytestmark = pytest.mark.integration

T0 = datetime(2025, 10, 1, tzinfo=UTC)
@pytest.fixture
async def web(web: Pipeline) -> Pipeline:
    """The shared `web` fixture, seeded for these tests."""
    p = web
    assert p.pool is not None
    await p.pool.execute(SEED, "a", "ws1", 0, T0, N)
    await p.pool.execute(SEED, "b", "ws2", 50_000, T0, 20)  # another workspace
    return p


async def _get(p: Pipeline, path: str, params: dict[str, Any] | None = None,
               token: str = TOKEN) -> tuple[int, Any]:
    assert p.session is not None
    async with p.session.get(f"{p.base}{path}", params=params or {},
                             headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def _walk(p: Pipeline, params: dict[str, Any], limit: int = 37) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, page = await _get(p, "/api/leads", {**params, "limit": limit,
                                                    **({"cursor": cursor} if cursor else {})})
        assert status == 200, page
        out += page["leads"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


async def _all(p: Pipeline) -> list[dict[str, Any]]:
    return [dict(r) for r in await p.fetch("SELECT * FROM leads WHERE workspace_id = 'ws1'")]


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"status": "new,converted"}, lambda r: r["lead_status"] in ("new", "converted")),
    ({"temperature": "hot"}, lambda r: r["lead_temperature"] == "hot"),
    ({"urgency": "high,medium"}, lambda r: r["urgency_level"] in ("high", "medium")),
    ({"domisili": "jakarta"}, lambda r: r["domisili"] == "Jakarta"),
    ({"business_type": "KULINER"}, lambda r: r["business_type"] == "Kuliner"),
    ({"min_score": 40, "max_score": 60},
     lambda r: r["lead_score"] is not None and 40 <= r["lead_score"] <= 60),
    ({"created_from": (T0 + timedelta(minutes=100)).isoformat(),
      "created_to": (T0 + timedelta(minutes=150)).isoformat()},
     lambda r: T0 + timedelta(minutes=100) <= r["created_at"] < T0 + timedelta(minutes=150)),
    ({"active_from": (T0 + timedelta(hours=1)).isoformat()},
     lambda r: r["last_activity_at"] >= T0 + timedelta(hours=1)),
    ({"q": "lead a12"}, lambda r: "lead a12" in r["name"].lower()),
    ({"q": "+6281200000007"}, lambda r: "+6281200000007" in r["phone_e164"]),
    ({"q": "fashion", "status": "qualified", "temperature": "warm,cold"},
     lambda r: r["business_type"] == "Fashion" and r["lead_status"] == "qualified"
     and r["lead_temperature"] in ("warm", "cold")),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS,
                         ids=[",".join(p) for p, _ in FILTERS])
async def test_filters_return_exactly_the_matching_leads_of_the_workspace(
    web: Pipeline, params: dict[str, Any], keep: Any
) -> None:
    want = {str(r["lead_id"]) for r in await _all(web) if keep(r)}
    got = [r["lead_id"] for r in await _walk(web, params)]
    assert want, "the filter should match something in the seed"
    assert len(got) == len(set(got)) and set(got) == want


@pytest.mark.parametrize("sort", ["last_activity_at", "lead_score", "created_at"])
async def test_sorts_are_total_and_stable_with_no_score_last(web: Pipeline, sort: str) -> None:
    got = await _walk(web, {"sort": sort}, limit=50)
    rows = {str(r["lead_id"]): r for r in await _all(web)}

    def key(r: dict[str, Any]) -> tuple[Any, str]:
        v = r[sort]
        return (-1 if v is None else v) if sort == "lead_score" else v, str(r["lead_id"])

    want = sorted(rows.values(), key=key, reverse=True)
    assert [r["lead_id"] for r in got] == [str(r["lead_id"]) for r in want]
    if sort == "lead_score":
        assert got[-1]["lead_score"] is None


async def test_pagination_under_concurrent_inserts_neither_repeats_nor_skips(
    web: Pipeline
) -> None:
    """New leads keep arriving (newest activity) while a client walks the pages: every lead
    that existed before the walk appears exactly once."""
    assert web.pool is not None
    before = {str(r["lead_id"]) for r in await _all(web)}
    seen: list[str] = []
    cursor = None
    inserted = 0
    while True:
        status, page = await _get(web, "/api/leads",
                                  {"limit": 25, **({"cursor": cursor} if cursor else {})})
        assert status == 200
        seen += [r["lead_id"] for r in page["leads"]]
        # a burst of new leads between two pages
        await web.pool.execute(SEED, f"n{inserted}-", "ws1", 100_000 + inserted * 10,
                               datetime.now(UTC), 5)
        inserted += 5
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "a lead was listed twice"
    assert before <= set(seen), f"missed {len(before - set(seen))} leads"
    assert inserted >= 40


async def test_status_counts_for_the_pipeline_header(web: Pipeline) -> None:
    status, body = await _get(web, "/api/leads/counts")
    assert status == 200
    rows = await _all(web)
    assert body["total"] == len(rows) == N
    for s in ("new", "qualified", "contacted", "converted", "archived"):
        assert body["counts"][s] == sum(1 for r in rows if r["lead_status"] == s)
    status, _ = await _get(web, "/api/leads/counts", token="nope")
    assert status == 401


@pytest.mark.parametrize(("params", "loc"), [
    ({"status": "won"}, ["query", "status", 0]),
    ({"temperature": "boiling"}, ["query", "temperature", 0]),
    ({"min_score": "high"}, ["query", "min_score"]),
    ({"limit": 0}, ["query", "limit"]),
    ({"sort": "name"}, ["query", "sort"]),
    ({"created_from": "yesterday"}, ["query", "created_from"]),
    ({"cursor": "zz"}, ["query", "cursor"]),
    ({"colour": "red"}, ["query", "colour"]),
])
async def test_bad_query_is_422_with_the_field(web: Pipeline, params: dict[str, Any],
                                               loc: list[Any]) -> None:
    status, body = await _get(web, "/api/leads", params)
    assert status == 422
    assert loc in [f["loc"] for f in body["fields"]]


async def test_openapi_document_matches_the_handlers(web: Pipeline) -> None:
    assert web.session is not None
    async with web.session.get(f"{web.base}/api/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    # every API route the server has is documented, and nothing else
    assert web.server is not None
    routes = {r.canonical for r in web.server.app.router.resources()
              if r.canonical.startswith("/api/") and r.canonical != "/api/openapi.json"}
    assert "/api/tasks/{task_id}/done" in routes and "/api/reports/team" in routes
    assert set(doc["paths"]) == routes
    params = {p["name"] for p in doc["paths"]["/api/leads"]["get"]["parameters"]}
    assert params == set(LeadQuery.model_fields)
    schemas = doc["components"]["schemas"]
    assert schemas["StatusIn"]["properties"]["status"]["enum"] == [
        "new", "qualified", "contacted", "converted", "archived"]
    assert schemas["SarahStateIn"]["properties"]["lead_score"]["anyOf"][0]["maximum"] == 100
    # what the document declares is what the server accepts
    for p in doc["paths"]["/api/leads"]["get"]["parameters"]:
        if p["name"] == "cursor":  # opaque: only what a previous page returned
            continue
        status, _ = await _get(web, "/api/leads", {p["name"]: _example(p["schema"])})
        assert status == 200, p["name"]


def _example(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("format") == "date-time":
        return T0.isoformat()
    if schema.get("type") == "boolean":
        return "true"
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 1) or 1)
    if "comma-separated:" in schema.get("description", ""):
        return schema["description"].split(": ")[1].split(", ")[0]
    return "x"


async def test_api_pool_plans_each_list_query_for_its_own_pattern(settings: Settings) -> None:
    """asyncpg prepares statements; a generic plan cannot use the trigram index for `q`
    (a scan of the whole workspace at 100k leads: bench/api_list.py), so the pool forces
    custom plans: after many executions a `q` query is still planned for its own pattern."""
    from leadstream.db.migrate import migrate_url
    from leadstream.http.server import _connect_pool

    await migrate_url(settings.dsn)
    pool = await _connect_pool(settings.dsn)
    try:
        assert await pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        from leadstream.http.queries import lead_list_sql

        await pool.execute(SEED.replace(f"% {N})", "% 20000)"), "a", "ws1", 0, T0, 20_000)
        await pool.execute("ANALYZE leads")
        sql, args = lead_list_sql("ws1", LeadQuery.model_validate({"q": "lead a4242"}))
        async with pool.acquire() as conn:
            stmt = await conn.prepare("EXPLAIN " + sql)
            for _ in range(8):  # past Postgres's five custom plans before it may go generic
                plan = "\n".join(r[0] for r in await stmt.fetch(*args))
            # a custom plan carries the pattern itself; a generic one only "$n"
            assert "'%lead a4242%'" in plan and "$" not in plan, plan
    finally:
        await pool.close()
