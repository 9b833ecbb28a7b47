"""Benchmark: the cost curve as work grows (issue #31, item 6). For each size, N leads in
state (one inbound message each, N distinct numbers), on the production store (RocksDB):

* drain: the backlog produced straight to the events topic, one worker from its start until
  the replica holds N leads (and the rate from the first row to the last);
* worker RSS after the drain (and its peak);
* replica size on disk (the pipeline's tables with their indexes);
* `GET /api/leads` latency, p50/p99 over sequential requests: the default page, a status
  filter sorted by score, and a text search;
* recovery after a restart: the worker stopped (SIGTERM) and started again, until its
  `/readyz` answers 200, first with its RocksDB files kept (reads the changelogs' tails),
  then with them deleted (a new machine: every changelog read from the start);
* with `--takeover 1,0`: two workers (standby replicas 1, then none), one SIGKILLed, and
  the time until messages to its leads are in the replica (`takeover`).

    python bench/scale.py --sizes 10000,100000,1000000

A fresh broker and Postgres per size (embedded unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
are set), so the sizes on disk are that size's alone. The daily close at these sizes is
`bench/daily_close.py --leads N`. Not a test: prints figures, asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiokafka.partitioner import DefaultPartitioner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import BenchStack, inbound_record, pct, proc_mb, py_spy, summarize_profile, wait_http

from leadstream.broker.clients import ensure_topics, make_producer, produce_batches
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace
from leadstream.embedded.procs import free_port
from leadstream.simulate import phone_for

WS = "scale"
TOKEN = "scale-token"
TABLES = ("leads", "messages", "lead_status_history", "lead_notes", "lead_daily_activity")


async def produce(settings: Any, n: int, chunk: int = 50_000) -> float:
    """N inbound messages from N distinct leads, as whole produce batches per partition."""
    producer = make_producer(settings, linger_ms=5)
    await producer.start()
    topic = settings.topic("events")
    started = time.perf_counter()
    try:
        parts = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()  # as the webhook's producer places a key
        for lo in range(0, n, chunk):
            by_part: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
            for i in range(lo, min(n, lo + chunk)):
                key, value = inbound_record(WS, i, i)
                p = partitioner(key, parts, parts)
                by_part.setdefault((topic, p), []).append((key, value))
            futs = await produce_batches(producer, by_part)
            await asyncio.gather(*(f for _, f in futs))
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def explain(conn: asyncpg.Connection) -> str:
    """EXPLAIN ANALYZE of the default lead-list page, as the API plans it."""
    from leadstream.http.models import LeadQuery
    from leadstream.http.queries import lead_list_sql

    sql, qargs = lead_list_sql(WS, LeadQuery())
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *qargs)
    return "\n".join(r[0] for r in rows)


async def quiet(pid: int, below: float = 0.05, window: float = 2.0, timeout: float = 120
                ) -> None:
    """Until the process uses less than `below` of a core over `window` seconds."""
    from stack import _cpu_seconds

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = _cpu_seconds(pid)
        await asyncio.sleep(window)
        if (_cpu_seconds(pid) - before) / window < below:
            return


async def api_latency(base: str, n: int, leads: int) -> dict[str, dict[str, float]]:
    out = {}
    queries = {"default page": "/api/leads?limit=50",
               "status, by score": "/api/leads?status=new&sort=lead_score&limit=50",
               # what a salesperson types: the last digits of one number
               "search, one number": f"/api/leads?q={phone_for(leads // 2)[-7:]}&limit=50",
               # 7 digits every number of the first 10,000 leads shares
               "search, 10k matches": f"/api/leads?q={phone_for(4242)[2:9]}&limit=50"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for name, path in queries.items():
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                async with http.get(base + path) as r:
                    await r.read()
                    assert r.status == 200, (r.status, path)
                times.append((time.perf_counter() - t0) * 1000)
            out[name] = {"p50": pct(times, 50), "p99": pct(times, 99)}
    return out


async def wait_ready(port: int, timeout: float) -> float:
    started = time.perf_counter()
    deadline = started + timeout
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    return float("nan")


async def one_size(n: int, args: argparse.Namespace, rocksdb: dict[str, Any]
                   ) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"lsscale{n}-"))
    stack = BenchStack(tmp, args.partitions)
    s = stack.start()
    s = s.model_copy(update={"table_store": "rocksdb://", "stall_seconds": 0.0,
                             "reconcile_interval_seconds": -1.0, **rocksdb})
    R: dict[str, Any] = {"leads": n, "rocksdb": rocksdb}
    try:
        await ensure_topics(s)
        await migrate_url(s.dsn)
        conn = await asyncpg.connect(s.dsn)
        await add_workspace(conn, workspace_id=WS, phone_number_id="scale-pnid",
                            webhook_secret="scale-secret", api_token=TOKEN, role="human")
        R["produce_s"] = await produce(s, n)
        print(f"# {n}: produced in {R['produce_s']:.1f}s", flush=True)

        t0 = time.perf_counter()
        worker = stack.spawn("worker", s, "worker")
        first = None
        while True:
            got = await conn.fetchval("SELECT count(*) FROM leads WHERE workspace_id = $1", WS)
            if got and first is None:
                first = (time.perf_counter(), got)
            if got >= n:
                break
            if time.perf_counter() - t0 > args.timeout:
                raise TimeoutError(f"{got}/{n} leads after {args.timeout}s")
            await asyncio.sleep(0.5)
        done = time.perf_counter()
        assert first is not None
        R["drain_s"] = done - t0
        R["drain_eps"] = (n - first[1]) / max(done - first[0], 1e-9)
        R["rss_mb"] = proc_mb(worker.pid, "VmRSS")
        R["rss_peak_mb"] = proc_mb(worker.pid, "VmHWM")
        print(f"# {n}: drained in {R['drain_s']:.1f}s ({R['drain_eps']:,.0f} ev/s after the"
              f" first row); worker RSS {R['rss_mb']:.0f} MB, peak {R['rss_peak_mb']:.0f}",
              flush=True)
        # the worker goes on after the last row (its changelog, RocksDB compactions): the
        # figures below are the idle replica's, not contention with it
        R["settled_s"] = time.perf_counter() - t0
        await quiet(worker.pid)
        R["plan_before_analyze"] = await explain(conn)
        R["last_autoanalyze"] = await conn.fetchval(
            "SELECT last_autoanalyze FROM pg_stat_user_tables WHERE relname = 'leads'")
        R["replica_mb"] = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(c))::float8 / 1048576 FROM unnest($1::regclass[])"
            " AS c", list(TABLES))
        R["lead_rows_mb"] = await conn.fetchval(
            "SELECT pg_total_relation_size('leads')::float8 / 1048576")

        stack.spawn("webhook", s, "webhook")
        await wait_http(f"http://{s.http_host}:{s.http_port}/healthz")
        base = f"http://{s.http_host}:{s.http_port}"
        await api_latency(base, 20, n)  # warm: connections, plans, caches
        # as left by the drain: a table grown this fast has not been analyzed yet
        # (autovacuum looks every minute), and the planner takes it for empty
        R["api_unanalyzed"] = await api_latency(base, args.requests, n)
        await conn.execute(f"ANALYZE {', '.join(TABLES)}")
        R["plan"] = await explain(conn)
        await conn.close()
        R["api"] = await api_latency(base, args.requests, n)
        print(f"# {n}: replica {R['replica_mb']:.0f} MB; API not analyzed yet"
              f" {R['api_unanalyzed']}, analyzed {R['api']}", flush=True)
        print(f"# {n}: leads last auto-analyzed {R['last_autoanalyze']}; default page's plan"
              f" after the drain:\n{R['plan_before_analyze']}\nafter ANALYZE:\n{R['plan']}",
              flush=True)

        # recovery: RocksDB kept (the changelogs' tails), then deleted (all of them)
        for kind in ("store kept", "store deleted"):
            stack.halt("worker")
            if kind == "store deleted":
                shutil.rmtree(s.data_dir / "worker-state", ignore_errors=True)
            worker = stack.spawn("worker", s, "worker")
            prof_path = Path(tempfile.gettempdir()) / f"lsscale-recovery-{n}.prof"
            prof = (py_spy(worker.pid, args.profile, prof_path, threads=True)
                    if args.profile and kind == "store deleted" else None)
            took = await wait_ready(s.worker_http_port, args.timeout)
            if prof is not None:
                prof.wait()
                R["recovery_profile"] = summarize_profile(prof_path, top=25)
                print(f"# {n}: worker profile during the recovery (py-spy, {args.profile}s,"
                      f" {prof_path})\n"
                      + R["recovery_profile"], flush=True)
            R[f"recovery_{kind}_s"] = took
            R[f"rss_after_{kind}_mb"] = proc_mb(worker.pid, "VmRSS")
            print(f"# {n}: restart, {kind}: ready in {took:.1f}s; RSS"
                  f" {R[f'rss_after_{kind}_mb']:.0f} MB", flush=True)
        stack.halt("worker")
        for k, standbys in enumerate(args.takeover):
            R[f"takeover_{standbys}"] = await takeover(n, stack, s, standbys, tmp, args.timeout,
                                                       first_id=n + 1000 * k)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return R


async def applied(port: int) -> dict[str, float]:
    """A worker's changelog records applied to its stores, by role (its /metrics)."""
    out = {"active": 0.0, "standby": 0.0}
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    for role, v in re.findall(r'^leadstream_worker_changelog_records_applied_total'
                              r'\{role="(\w+)",table="[^"]+"\} (\S+)$', text, re.M):
        out[role] += float(v)
    return out


async def takeover(n: int, stack: BenchStack, s: Any, standbys: int, tmp: Path,
                   timeout: float, first_id: int, probes: int = 64) -> dict[str, Any]:
    """Two workers with `standbys` standby replicas share the partitions (the first keeps
    its store, the second starts empty); once both are ready (and the second's standby
    copies have caught up), the first is SIGKILLed and `probes` messages to existing leads
    are produced at once: the takeover is from the kill until every probe is in the replica
    (the session timeout, the rebalance, the restore of whatever the survivor lacks, the
    batch). Each run begins from the store the drain left, the second worker's from none;
    its probes are new messages (event ids from `first_id`)."""
    sa = s.model_copy(update={"table_standby_replicas": standbys,
                              "worker_http_port": free_port()})
    sb = sa.model_copy(update={"data_dir": tmp / f"worker-b-{standbys}",
                               "worker_http_port": free_port()})
    t0 = time.perf_counter()
    R: dict[str, Any] = {"standbys": standbys}
    # the first alone (it takes every partition), then the second joins: it restores its
    # half from the changelogs, and with a standby copies the first's half
    stack.spawn("worker", sa, "worker")
    R["ready_a_s"] = await wait_ready(sa.worker_http_port, timeout)
    stack.spawn("worker-b", sb, "worker")
    R["ready_b_s"] = await wait_ready(sb.worker_http_port, timeout)
    last, stable_since = await applied(sb.worker_http_port), time.perf_counter()
    while time.perf_counter() - stable_since < 5.0:  # nothing more to copy or restore
        await asyncio.sleep(1.0)
        now = await applied(sb.worker_http_port)
        if now != last:
            last, stable_since = now, time.perf_counter()
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the second worker not settled after {timeout}s: {now}")
    await wait_ready(sa.worker_http_port, timeout)
    R["warm_s"] = time.perf_counter() - t0
    R["before"] = last
    R["rss_b_mb"] = proc_mb(stack.pids["worker-b"], "VmRSS")
    print(f"# {n}: two workers, {standbys} standby: ready {R['ready_a_s']:.1f}s /"
          f" {R['ready_b_s']:.1f}s, settled {R['warm_s']:.1f}s; survivor applied {last};"
          f" RSS {R['rss_b_mb']:.0f} MB", flush=True)

    victim = stack.procs.pop("worker")
    stack.pids.pop("worker", None)
    victim.kill()
    killed = time.perf_counter()
    victim.wait()
    producer = make_producer(s, linger_ms=0)
    await producer.start()
    topic = s.topic("events")
    wamids = []
    try:
        for j in range(probes):
            key, value = inbound_record(WS, first_id + j, j * (n // probes))
            wamids.append(f"wamid.{WS}.{first_id + j}")
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    conn = await asyncpg.connect(s.dsn)
    try:
        while True:
            got = await conn.fetchval("SELECT count(*) FROM messages WHERE message_id = ANY($1)",
                                      wamids)
            if got >= probes:
                break
            if time.perf_counter() - killed > timeout:
                raise TimeoutError(f"{got}/{probes} probes after {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    R["takeover_s"] = time.perf_counter() - killed
    R["after"] = await applied(sb.worker_http_port)
    R["restored"] = R["after"]["active"] - R["before"]["active"]
    R["rss_b_after_mb"] = proc_mb(stack.pids["worker-b"], "VmRSS")
    print(f"# {n}: {standbys} standby: SIGKILL -> {probes} probes in the replica in"
          f" {R['takeover_s']:.1f}s; the survivor restored {R['restored']:,.0f} changelog"
          f" records; RSS {R['rss_b_after_mb']:.0f} MB", flush=True)
    stack.halt("worker-b")
    return R


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| leads | drain (from start) | drain rate | worker RSS / peak | replica on disk |"
           " `GET /api/leads` p50 / p99: default, by score, one number, 10k matches (default page before"
           " the first ANALYZE) | ready after restart:"
           " store kept / deleted | RSS after recovery (deleted) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        api = ", ".join(f"{v['p50']:.1f} / {v['p99']:.1f} ms" for v in r["api"].values())
        cold = r["api_unanalyzed"]["default page"]
        out.append(f"| {r['leads']:,} ({r.get('store', 'ours')}) | {r['drain_s']:.1f} s |"
                   f" {r['drain_eps']:,.0f} ev/s |"
                   f" {r['rss_mb']:.0f} / {r['rss_peak_mb']:.0f} MB |"
                   f" {r['replica_mb']:.0f} MB ({r['lead_rows_mb']:.0f} MB leads) | {api}"
                   f" ({cold['p50']:.1f} / {cold['p99']:.1f} ms) |"
                   f" {r['recovery_store kept_s']:.1f} s / {r['recovery_store deleted_s']:.1f} s |"
                   f" {r['rss_after_store deleted_mb']:.0f} MB |")
    takeovers = [(r, v) for r in rows for k, v in r.items() if k.startswith("takeover_")]
    if takeovers:
        out += ["", "| leads | standby replicas | ready: first alone, second joined / settled |"
                " SIGKILL -> probes in the replica | changelog records the survivor restored |"
                " survivor RSS before / after |", "|---|---|---|---|---|---|"]
        for r, v in takeovers:
            out.append(f"| {r['leads']:,} | {v['standbys']} |"
                       f" {v['ready_a_s']:.1f}, {v['ready_b_s']:.1f} / {v['warm_s']:.1f} s |"
                       f" {v['takeover_s']:.1f} s | {v['restored']:,.0f} |"
                       f" {v['rss_b_mb']:.0f} / {v['rss_b_after_mb']:.0f} MB |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    type=lambda v: [int(x) for x in v.split(",")])
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--requests", type=int, default=300, help="per API query")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--takeover", default=[], type=lambda v: [int(x) for x in v.split(",")],
                    metavar="STANDBYS", help="after the restarts, two workers and a SIGKILL,"
                    " once per standby-replica count given (e.g. 1,0)")
    ap.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                    help="py-spy the worker for so many seconds of the recovery without its store")
    ap.add_argument("--stores", default="ours", type=lambda v: v.split(","),
                    help="RocksDB memory settings: ours (LEADSTREAM_ROCKSDB_*), faust (its"
                         " defaults), or both, side by side")
    args = ap.parse_args()
    rows = []
    stores = {"ours": {}, "faust": {"rocksdb_write_buffer_mb": 0, "rocksdb_block_cache_mb": 0}}
    for n in args.sizes:
        for name in args.stores:
            rows.append(asyncio.run(one_size(n, args, stores[name])))
            rows[-1]["store"] = name
            if args.json:  # after each run: a failure later keeps what was measured
                args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
