"""Benchmark: producer compression (#31, item 3) side by side in one run, on one broker and
one Postgres: for each codec a fresh webhook and worker (`LEADSTREAM_PRODUCER_COMPRESSION`,
which every producer of theirs uses), 20,000 events pushed end to end in signed Kapso
batches of 50, then a backlog produced straight to the events topic and drained by the
worker alone. Prints end-to-end events/s, CPU milliseconds per event of each process, and
the bytes the broker stored per event (every topic and changelog of the run).

    python bench/compression.py [--codecs none,lz4,zstd,gzip] [--push 20000] [--rounds 2]

Codecs run in turn, round after round (none, lz4, zstd, none, lz4, zstd, ...), so drift of
the box over the run falls on every codec alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import BenchStack, CpuMeter, inbound_record, wait_http
from suite import PNID, SECRET, batch50, closed_loop, held, produce, wait_count

from leadstream.broker.clients import ensure_topics
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace


def topic_bytes(broker_dir: Path, prefix: str, app_id: str) -> int:
    """Bytes of log segments of the run's topics (its prefix) and changelogs (its app id)."""
    total = 0
    for d in broker_dir.rglob("*"):
        if d.is_dir() and (d.name.startswith(prefix + ".") or d.name.startswith(app_id + "-")):
            total += sum(f.stat().st_size for f in d.glob("*.log"))
    return total


async def one(stack: BenchStack, codec: str, args: argparse.Namespace, round_: int
              ) -> dict[str, Any]:
    s = stack.settings(LEADSTREAM_PRODUCER_COMPRESSION=codec,
                       LEADSTREAM_REPLICA_WRITER="worker")
    await ensure_topics(s)
    ws = f"c{codec}{round_}"
    conn = await asyncpg.connect(s.dsn)
    await add_workspace(conn, workspace_id=ws, phone_number_id=f"{PNID}-{ws}",
                        webhook_secret=SECRET, api_token=None)
    await conn.close()
    stack.spawn(f"worker-{ws}", s, "worker")
    stack.spawn(f"webhook-{ws}", s, "webhook")
    await wait_http(f"http://{s.http_host}:{s.http_port}/healthz")
    url = f"http://{s.http_host}:{s.http_port}/webhooks/kapso"
    pids: dict[str, int] = {"webhook": stack.pids[f"webhook-{ws}"],
                            "worker": stack.pids[f"worker-{ws}"], "loadgen": os.getpid()}
    pids.update({k: stack.pids[k] for k in ("broker", "postgres") if k in stack.pids})
    # warm-up: the worker joins its group, the JVM compiles
    make = batch50(f"w{ws}", 0, args.leads, pnid=f"{PNID}-{ws}")
    await closed_loop(url, make, concurrency=8, total=40)
    await wait_count(s.dsn, "leads", ws, 40 * 50, 180)
    meter = CpuMeter(pids)
    meter.start()
    started = time.perf_counter()
    n_req = args.push // 50
    await closed_loop(url, batch50(f"p{ws}", 10_000, args.leads, pnid=f"{PNID}-{ws}"),
                      concurrency=64, total=n_req)
    got, done = await wait_count(s.dsn, "leads", ws, 40 * 50 + n_req * 50, 600)
    meter.stop()
    e2e = {"eps": (got - 40 * 50) / (done - started),
           "ms": {n: 1000 * u / (got - 40 * 50) for n, u in meter.used.items()}}
    # the worker alone on a backlog (no webhook, no load generator)
    recs = [inbound_record(ws, i, 500_000 + i % args.leads) for i in range(args.backlog)]
    before = got
    meter = CpuMeter({k: v for k, v in pids.items() if k not in ("webhook", "loadgen")})
    with held(stack, [f"worker-{ws}"]):  # else it drains part of it untimed (session 18)
        await produce(s, s.topic("events"), recs)
        meter.start()
        started = time.perf_counter()
    got, done = await wait_count(s.dsn, "leads", ws, before + args.backlog, 600)
    meter.stop()
    drain = {"eps": (got - before) / (done - started),
             "ms": {n: 1000 * u / (got - before) for n, u in meter.used.items()}}
    stack.halt(f"webhook-{ws}")
    stack.halt(f"worker-{ws}")
    stored = topic_bytes(stack.tmp / "broker", s.topic_prefix, s.app_id)
    return {"codec": codec, "round": round_, "e2e": e2e, "drain": drain,
            "bytes_per_event": stored / (got or 1)}


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="lscodec-"))
    stack = BenchStack(tmp, args.partitions)
    s = stack.start()
    results = []
    try:
        await migrate_url(s.dsn)
        # the JVM compiles its hot paths in the first tens of thousands of records: a
        # discarded round first, so the first codec measured does not pay for it
        warm = argparse.Namespace(**{**vars(args), "push": 10_000, "backlog": 5_000})
        await one(stack, "none", warm, -1)
        for r in range(args.rounds):
            for codec in args.codecs:
                res = await one(stack, codec, args, r)
                results.append(res)
                print(f"# {codec} round {r}: e2e {res['e2e']['eps']:.0f} ev/s, drain "
                      f"{res['drain']['eps']:.0f} ev/s, {res['bytes_per_event']:.0f} B/event "
                      "stored; ms/event e2e " + ", ".join(
                          f"{n} {v:.3f}" for n, v in res["e2e"]["ms"].items()), flush=True)
    finally:
        stack.stop()
    return results


def table(results: list[dict[str, Any]]) -> str:
    procs = ["loadgen", "webhook", "broker", "worker", "postgres"]
    out = ["| codec | round | end to end ev/s | " + " | ".join(procs)
           + " | total ms/event | drain ev/s | drain broker / worker ms | stored B/event |",
           "|---" * (len(procs) + 7) + "|"]
    for r in results:
        ms = r["e2e"]["ms"]
        d = r["drain"]["ms"]
        out.append(f"| {r['codec']} | {r['round']} | {r['e2e']['eps']:,.0f} | "
                   + " | ".join(f"{ms.get(p, 0):.3f}" for p in procs)
                   + f" | {sum(ms.values()):.3f} | {r['drain']['eps']:,.0f} | "
                   f"{d.get('broker', 0):.3f} / {d.get('worker', 0):.3f} | "
                   f"{r['bytes_per_event']:,.0f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codecs", default="none,lz4,zstd,gzip", type=lambda v: v.split(","))
    ap.add_argument("--push", type=int, default=20_000)
    ap.add_argument("--backlog", type=int, default=20_000)
    ap.add_argument("--leads", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    results = asyncio.run(main_async(args))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
