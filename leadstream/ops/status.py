"""`leadstream status`: what the operator on call asks first, from the broker and the replica
only (no worker needs to answer): consumer lag per group and partition, dead letters by stage,
the last daily close, and how fresh the replica is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from leadstream.config import Settings
from leadstream.db import watermarks
from leadstream.ops.lag import read_lag


async def gather(settings: Settings) -> dict[str, Any]:
    lag = await read_lag(settings)
    conn = await asyncpg.connect(settings.dsn, timeout=10)
    try:
        dead = {r["stage"]: r["n"] for r in await conn.fetch(
            "SELECT stage, count(*) AS n FROM sync_failures GROUP BY stage ORDER BY stage")}
        last_close = await conn.fetchval(
            "SELECT max(day) FROM lead_daily_activity WHERE summary IS NOT NULL")
        newest = await conn.fetchval("SELECT max(updated_at) FROM leads")
        leads = await conn.fetchval("SELECT count(*) FROM leads")
        try:
            marks = await watermarks.watermarks(conn)
        except asyncpg.UndefinedTableError:  # a replica not migrated since reconciliation
            marks = []
    finally:
        await conn.close()
    now = datetime.now(UTC)
    return {
        "at": now.isoformat(), "lag": lag, "dead_letters": dead,
        "reconcile": [{
            "workspace_id": m["workspace_id"], "phone_number_id": m["phone_number_id"],
            "complete_until": m["complete_until"].isoformat() if m["complete_until"] else None,
            "seconds_behind": round((now - m["complete_until"]).total_seconds())
            if m["complete_until"] else None,
            "failures": m["failures"], "failing": m["failing"], "last_error": m["last_error"],
            "read_total": m["read_total"], "missing_total": m["missing_total"],
        } for m in marks],
        "last_daily_close": last_close.isoformat() if last_close else None,
        "replica": {"leads": leads, "newest_lead_update": newest.isoformat() if newest else None,
                    "seconds_since": round((now - newest).total_seconds(), 1)
                    if newest else None},
    }


def render(r: dict[str, Any]) -> str:
    out = []
    for role, g in r["lag"].items():
        out.append(f"{role:10} group {g['group']}: lag {g['total']}")
        for p in g["partitions"]:
            if p["lag"]:
                out.append(f"  {p['topic']}[{p['partition']}]  committed {p['committed']}"
                           f"  end {p['end']}  lag {p['lag']}")
        if not g["partitions"]:
            out.append("  (no offsets committed: not started, or nothing consumed yet)")
    dead = r["dead_letters"]
    out.append("dead letters: " + (", ".join(f"{k} {v}" for k, v in dead.items()) or "none"))
    out.append(f"last daily close: {r['last_daily_close'] or 'none yet'}")
    rep = r["replica"]
    fresh = (f"newest lead update {rep['newest_lead_update']} ({rep['seconds_since']} s ago)"
             if rep["newest_lead_update"] else "no leads yet")
    out.append(f"replica: {rep['leads']} leads; {fresh}")
    for m in r.get("reconcile", []):
        where = f"{m['workspace_id']}/{m['phone_number_id']}"
        mark = (f"complete until {m['complete_until']} ({m['seconds_behind']} s ago)"
                if m["complete_until"] else "never complete yet")
        fail = (f"; FAILING ({m['failures']} in a row): {m['last_error']}" if m["failing"]
                else f"; last error: {m['last_error']}" if m["last_error"] else "")
        out.append(f"reconcile {where}: {mark}; found missing {m['missing_total']}{fail}")
    return "\n".join(out)
