"""The benchmark suite (issue 7): freshness, sustained throughput, webhook ingest, replay,
the raw limits of the same broker and database, and the naive design, in one run on one
machine so the ratios hold. Prints markdown tables (copy them into BENCHMARKS.md), writes a
PNG plot of freshness against rate and, with --json, every figure.

    python bench/suite.py                       # the full run (~15-20 min on 2 cores)
    python bench/suite.py --quick               # a smoke run of every part (~3 min)
    python bench/suite.py --profile             # also py-spy the worker and the webhook

Not a test: nothing here asserts a speed. Starts its own embedded broker and Postgres unless
KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set; the webhook, the worker and the naive server
are separate processes, as in production; the load generator is this process. Its
requests post through `loadgen.RawClient` unless `--loadgen aiohttp`: it shares the two
cores with what it measures, and aiohttp's client took 0.18 ms of CPU per single request
against 0.065 (BENCHMARKS.md, session 17).

Definitions:
* freshness: from the webhook's 200 at the client to the NOTIFY of a bench-only trigger on
  `leads` showing the lead's new `message_count` ("200->visible", the contract's figure);
  "sent->visible" starts at the request instead, which is what the naive design can be
  compared on (its row exists before its 200).
* sustained throughput: events pushed through the webhook as fast as it answers for
  `--sustained-seconds` (10, as long as the naive design's step), from the first request to
  the last row visible; and a backlog produced straight to the events topic, drained by the
  worker alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from prometheus_client.parser import text_string_to_metric_families

from leadstream.broker.clients import ensure_topics, log_ends, make_consumer, make_producer
from leadstream.config import Settings
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace
from leadstream.embedded.procs import free_port
from leadstream.simulate import kapso_message, open_loop, phone_for, signed
from leadstream.sink.replay import replay_and_verify
from leadstream.sink.writer import LEAD_COLUMNS, Batch, write_batch
from leadstream.streams.topics import TopicNames

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import FAILURES, RawPool, closed_loop_raw, request_bytes
from loadgen import closed_loop as run_closed_loop
from naive import SCHEMA as NAIVE_SCHEMA
from stack import (
    BenchStack,
    CpuMeter,
    cpu_line,
    inbound_record,
    pct,
    py_spy,
    summarize_profile,
    wait_http,
)

SECRET = "bench-secret"
PNID = "bench-pnid"
TRIGGERS = """
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], NEW.phone_e164 || ' ' || NEW.message_count);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_notify ON leads;
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE ON leads
  FOR EACH ROW EXECUTE FUNCTION bench_notify('bench_leads');
DROP TRIGGER IF EXISTS bench_notify ON naive_leads;
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE ON naive_leads
  FOR EACH ROW EXECUTE FUNCTION bench_notify('bench_naive');
"""
PARTS = ("freshness", "backlog", "split", "perrecord", "sustained", "naive", "ingest", "replay", "limits")
HEADERS = {"X-Webhook-Event": "whatsapp.message.received", "Content-Type": "application/json"}
#: the load generator's HTTP client (`--loadgen`): aiohttp's, or `loadgen.RawClient`
LOADGEN = {"kind": "aiohttp"}


# ----------------------------------------------------------------------------- load

class Visibility:
    """Collects NOTIFYs of `<phone> <message_count>`; answers when a count became visible."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[int, float]]] = {}

    def on_notify(self, *a: object) -> None:
        phone, _, count = str(a[3]).partition(" ")
        self.seen.setdefault(phone, []).append((int(count), time.perf_counter()))

    def at(self, phone: str, count: int) -> float | None:
        for c, t in self.seen.get(phone, ()):
            if c >= count:
                return t
        return None


def message_body(lead: int, wamid: str, pnid: str = PNID) -> dict[str, Any]:
    return kapso_message(pnid, wa_id=phone_for(lead), wamid=wamid,
                         text="Halo kak, mau tanya harga paket bulanan", ts=int(time.time()),
                         name=f"Lead {lead}")


async def freshness(url: str, dsn: str, channel: str, rate: int, seconds: float, leads: int,
                    run: str, lead_base: int, drain: float, per: int = 1) -> dict[str, Any]:
    """Open-loop load at `rate` events/s in requests of `per` events (a Kapso batch when
    more than one; requests leave on schedule); latency figures in ms."""
    vis = Visibility()
    listener = await asyncpg.connect(dsn)
    await listener.add_listener(channel, vis.on_notify)
    sent: dict[tuple[str, int], float] = {}
    acked: dict[tuple[str, int], float] = {}
    counts: dict[int, int] = {}
    errors = 0
    total = int(rate * seconds) // per
    pool = RawPool(url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512),
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        async def post(raw: bytes, sig: str) -> bool:
            """True if the webhook answered 200."""
            if LOADGEN["kind"] == "raw":
                try:
                    return await pool.post(request_bytes(
                        url, raw, {**HEADERS, "X-Webhook-Signature": sig})) == 200
                except FAILURES:
                    return False
            try:
                return await aiohttp_post(session, url, raw, sig)
            except aiohttp.ClientError:
                return False

        async def one(i: int) -> None:
            nonlocal errors
            keys, items = [], []
            for j in range(per):
                n = i * per + j
                lead = lead_base + n % leads
                counts[lead] = counts.get(lead, 0) + 1
                keys.append(("+" + phone_for(lead), counts[lead]))
                items.append(message_body(lead, f"wamid.{run}.{n}"))
            raw, sig = signed(SECRET, items[0] if per == 1 else {"batch": True, "data": items})
            now = time.perf_counter()
            for key in keys:
                sent[key] = now
            if await post(raw, sig):
                done = time.perf_counter()
                for key in keys:
                    acked[key] = done
            else:
                errors += 1

        elapsed = await open_loop(rate / per, total, one)
    pool.close()
    deadline = time.perf_counter() + drain
    while time.perf_counter() < deadline and any(vis.at(*k) is None for k in acked):
        await asyncio.sleep(0.1)
    await listener.close()
    fresh, e2e, req = [], [], []
    for k, t in acked.items():
        req.append((t - sent[k]) * 1000)
        v = vis.at(*k)
        if v is not None:
            fresh.append(max(0.0, v - t) * 1000)  # visible before the 200 arrived: 0
            e2e.append((v - sent[k]) * 1000)
    return {"rate": rate, "per": per, "achieved": total * per / elapsed, "sent": total * per,
            "acked": len(acked),
            "errors": errors, "visible": len(fresh),
            "fresh": {p: pct(fresh, p) for p in (50, 95, 99)},
            "e2e": {p: pct(e2e, p) for p in (50, 95, 99)},
            "request": {p: pct(req, p) for p in (50, 95, 99)}}


async def aiohttp_post(session: aiohttp.ClientSession, url: str, raw: bytes, sig: str) -> bool:
    """One signed delivery through aiohttp's client; True if answered 200."""
    async with session.post(url, data=raw,
                            headers={**HEADERS, "X-Webhook-Signature": sig}) as resp:
        await resp.read()
        return resp.status == 200


async def closed_loop(url: str, make: Callable[[int], tuple[bytes, str]], *, concurrency: int,
                      seconds: float | None = None, total: int | None = None
                      ) -> dict[str, Any]:
    """`loadgen.closed_loop` against `url`: a `loadgen.RawClient` per client, or with
    `--loadgen aiohttp` one aiohttp session's connections."""
    if LOADGEN["kind"] == "raw":
        r = await closed_loop_raw(url, make, HEADERS, concurrency=concurrency,
                                  seconds=seconds, total=total)
    else:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                         timeout=aiohttp.ClientTimeout(total=None)) as session:
            async def post(raw: bytes, sig: str) -> bool:
                return await aiohttp_post(session, url, raw, sig)

            r = await run_closed_loop(lambda: (post, lambda: None), make,
                                      concurrency=concurrency, seconds=seconds, total=total,
                                      failures=(aiohttp.ClientError,))
    lat = r.pop("lat")
    return {**r, "p50": pct(lat, 50), "p99": pct(lat, 99)}


def single(run: str, lead_base: int, leads: int) -> Callable[[int], tuple[bytes, str]]:
    return lambda i: signed(SECRET, message_body(lead_base + i % leads, f"wamid.{run}.{i}"))


def batch50(run: str, lead_base: int, leads: int, pnid: str = PNID
            ) -> Callable[[int], tuple[bytes, str]]:
    def make(i: int) -> tuple[bytes, str]:
        items = [message_body(lead_base + (i * 50 + j) % leads, f"wamid.{run}.{i}.{j}", pnid)
                 for j in range(50)]
        return signed(SECRET, {"batch": True, "data": items})
    return make


async def wait_count(dsn: str, table: str, workspace: str, want: int, timeout: float
                     ) -> tuple[int, float]:
    """Poll until the workspace's summed message_count reaches `want`; (count, monotonic)."""
    conn = await asyncpg.connect(dsn)
    deadline = time.perf_counter() + timeout
    got = 0
    try:
        while time.perf_counter() < deadline:
            got = int(await conn.fetchval(
                f"SELECT coalesce(sum(message_count), 0) FROM {table} WHERE workspace_id = $1",
                workspace))
            if got >= want:
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return got, time.perf_counter()


async def produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]
                  ) -> float:
    producer = make_producer(settings, linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    try:
        futs = [await producer.send(topic, v, key=k) for k, v in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- the run

async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lssuite-"))
    stack = BenchStack(tmp, args.partitions, broker=args.broker)
    s = stack.start()
    R: dict[str, Any] = {"machine": {
        "platform": platform.platform(), "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("faust-streaming", "aiokafka", "asyncpg",
                                              "aiohttp", "pydantic", "orjson")},
        "broker": stack.broker_name, "partitions": args.partitions, "workers": args.workers,
        "producer_linger_ms": s.producer_linger_ms, "sink_batch_max": s.sink_batch_max,
        "fetch_max_wait_ms": s.fetch_max_wait_ms}}
    try:
        await ensure_topics(s)
        await migrate_url(s.dsn)
        conn = await asyncpg.connect(s.dsn)
        await add_workspace(conn, workspace_id="bench", phone_number_id=PNID,
                            webhook_secret=SECRET, api_token=None)
        await conn.execute(NAIVE_SCHEMA)
        await conn.execute(TRIGGERS)
        await conn.close()
        # `--workers N`: a fleet in one group, each worker its own HTTP port and data dir
        workers: list[str] = []
        worker_ports: list[int] = []
        for i in range(args.workers):
            name = "worker" if i == 0 else f"worker{i + 1}"
            ws = s if i == 0 else s.model_copy(update={"worker_http_port": free_port(),
                                                        "data_dir": tmp / f"data{i + 1}"})
            stack.spawn(name, ws, "worker")
            workers.append(name)
            worker_ports.append(ws.worker_http_port)
        stack.spawn("webhook", s, "webhook")
        naive_port = free_port()
        stack.spawn_py("naive", s.model_copy(update={"http_port": naive_port}),
                       Path(__file__).with_name("naive.py"))
        ours = f"http://{s.http_host}:{s.http_port}/webhooks/kapso"
        naive = f"http://127.0.0.1:{naive_port}/webhooks/kapso"
        await wait_http(f"http://{s.http_host}:{s.http_port}/healthz")
        await wait_http(f"http://127.0.0.1:{naive_port}/healthz")
        pids: dict[str, int | tuple[int, ...]] = {
                "worker": tuple(stack.pids[w] for w in workers), "webhook": stack.pids["webhook"],
                "naive": stack.pids["naive"], "loadgen": os.getpid(),
                **{k: stack.pids[k] for k in ("broker", "postgres") if k in stack.pids}}
        # the JVM compiles its hot paths in the first tens of thousands of requests: a
        # short warm-up left that in the first step's broker CPU (0.38 core at 200/s
        # against 0.27 at 1,000/s in one run)
        warm = await freshness(ours, s.dsn, "bench_leads", args.warmup_rate,
                               args.warmup_seconds, 10, "warm", 0, 60)
        print(f"# warm-up: {warm['visible']}/{warm['acked']} visible", flush=True)
        # the broker's JIT goes on compiling well past that: 0.16-0.23 core of compiler
        # threads in the 200/s step after it (BENCHMARKS.md, session 16), CPU a warm broker
        # never spends. Warm on, 5 s at a time, until they are quiet (or --warmup-max)
        if "broker" in stack.pids:
            jit, spent = 1.0, 0.0
            while jit > 0.05 and spent < args.warmup_max:
                meter = CpuMeter({"broker": stack.pids["broker"]})
                meter.start()
                await freshness(ours, s.dsn, "bench_leads", args.warmup_rate, 5, 10,
                                f"warm{spent:.0f}", 1000 + 20 * int(spent), 60)
                meter.stop()
                jit, spent = meter.jit / meter.wall, spent + meter.wall
            print(f"# broker JIT after {spent:.0f} s more warm-up: {jit:.2f} core", flush=True)
        if len(worker_ports) > 1:
            print(f"# workers: {await wait_assigned(worker_ports, s.topic('events'))}"
                  " events partitions each", flush=True)
        base = 100_000
        R["accounting"] = []

        # 1 + 6a: freshness against rate, ours and naive, open loop
        if "freshness" in args.parts:
            R["freshness"] = []
            for design, url, channel in (("leadstream", ours, "bench_leads"),
                                         ("naive", naive, "bench_naive")):
                if design not in args.designs:
                    continue
                if design == "naive":
                    await pause_ours(stack, True, workers)
                # by rate, a batched step before the single one of the same rate: the single
                # 3,000/s step overloads the box (the load generator and the webhook), and
                # its backlog would still be in the next step's figures
                steps = sorted([*((r, 1) for r in args.rates),
                                *((r, 10) for r in args.batched_rates)],
                               key=lambda rp: (rp[0], -rp[1]))
                for rate, per in steps:
                    base += 100_000
                    meter = CpuMeter(pids)
                    counts = await worker_counts(*worker_ports) if design == "leadstream" \
                        else {}
                    meter.start()
                    profs = {}
                    if design == "leadstream" and (rate, per) == (args.profile_rate, 1):
                        profs = {who: (py_spy(stack.pids[who], args.seconds - 1,
                                              tmp / f"{who}-{rate}.prof"),
                                       tmp / f"{who}-{rate}.prof")
                                 for who in ("worker", "webhook")}
                    r = await freshness(url, s.dsn, channel, rate, args.seconds, args.leads,
                                        f"{design}{rate}x{per}", base, args.drain, per)
                    for who, (prof, path) in profs.items():
                        if prof is not None:
                            prof.wait()
                            R[f"{who}_profile_{rate}"] = summarize_profile(path, top=25)
                    r["design"] = design
                    r["cpu"] = meter.stop()
                    if design == "leadstream":
                        R["accounting"].append({"step": f"{rate}/s, {per} per request", **account(
                            meter, r["visible"], r["acked"] // per, counts,
                            await worker_counts(*worker_ports))})
                    R["freshness"].append(r)
                    print(f"# freshness {design} {rate}/s in requests of {per}: achieved {r['achieved']:.0f},"
                          f" visible {r['visible']}/{r['acked']}, 200->visible p99"
                          f" {r['fresh'][99]:.0f} ms, sent->visible p99 {r['e2e'][99]:.0f} ms;"
                          f" cpu {cpu_line(r['cpu'])} (broker JIT {meter.jit / meter.wall:.2f})",
                          flush=True)
            await pause_ours(stack, False, workers)
            warm = await freshness(ours, s.dsn, "bench_leads", 20, 3, 10, "rewarm", 50, 60)
            print(f"# resumed: {warm['visible']}/{warm['acked']} visible", flush=True)

        # 2: sustained throughput. (a) a backlog straight to the topic, the worker alone
        if "backlog" in args.parts:
            n = args.backlog
            recs = [inbound_record("backlog", i, 900_000 + i % args.leads) for i in range(n)]
            meter = CpuMeter(pids)
            prof = None
            counts = await worker_counts(*worker_ports)
            with held(stack, workers):
                held_s = await produce(s, s.topic("events"), recs)
                started = time.perf_counter()
                meter.start()
            if args.profile:
                prof = py_spy(stack.pids["worker"], min(30, n / 1500), tmp / "worker.prof")
            got, done = await wait_count(s.dsn, "leads", "backlog", n, 900)
            R["backlog"] = {"events": n, "visible": got, "seconds": done - started,
                            "eps": got / (done - started), "cpu": meter.stop()}
            after = await worker_counts(*worker_ports)
            R["accounting"].append({"step": "backlog drain (worker alone)", **account(
                meter, got, None, counts, after)})
            print(f"# backlog drain: {R['backlog']['eps']:.0f} ev/s; cpu "
                  f"{cpu_line(R['backlog']['cpu'])}; produced in {held_s:.1f} s with the"
                  f" workers held, {after['rebalances'] - counts['rebalances']:.0f}"
                  " rebalances meanwhile", flush=True)
            if prof is not None:
                prof.wait()
                R["worker_profile"] = summarize_profile(tmp / "worker.prof")

        # 2 (a'): the same backlog through other designs of the worker, side by side with
        # (a): the sink writes the replica (the worker only produces), and the per-record
        # path through Faust's agent (LEADSTREAM_WORKER_BATCH=false)
        for part, env, label in (
            ("split", {"LEADSTREAM_REPLICA_WRITER": "sink"},
             "batch path, replica written by the sink (in-process)"),
            ("perrecord", {"LEADSTREAM_WORKER_BATCH": "false"},
             "per-record path (Faust agent, one flush per record)"),
        ):
            if part not in args.parts:
                continue
            s4 = stack.settings(**env)
            await ensure_topics(s4)
            stack.spawn(f"worker-{part}", s4, "worker")
            warm_recs = [inbound_record(f"{part}warm", i, 950_000 + i) for i in range(10)]
            await produce(s4, s4.topic("events"), warm_recs)
            await wait_count(s4.dsn, "leads", f"{part}warm", 10, 120)
            n = args.backlog if part != "perrecord" else max(1000, args.backlog // 10)
            recs = [inbound_record(part, i, 960_000 + i % args.leads) for i in range(n)]
            meter = CpuMeter({"worker": stack.pids[f"worker-{part}"],
                              **{k: stack.pids[k] for k in ("broker", "postgres")
                                 if k in stack.pids}})
            with held(stack, [f"worker-{part}"]):
                await produce(s4, s4.topic("events"), recs)
                started = time.perf_counter()
                meter.start()
            got, done = await wait_count(s4.dsn, "leads", part, n, 900)
            R[part] = {"events": n, "visible": got, "seconds": done - started,
                       "eps": got / (done - started), "cpu": meter.stop(), "design": label}
            print(f"# backlog drain, {label}: {R[part]['eps']:.0f} ev/s;"
                  f" cpu {cpu_line(R[part]['cpu'])}", flush=True)
            stack.halt(f"worker-{part}")
            # same database, other topics: drop its rows so the replay below compares like
            # with like
            conn = await asyncpg.connect(s.dsn)
            for t in ("leads", "messages", "lead_status_history", "lead_notes",
                      "lead_daily_activity"):
                await conn.execute(f"DELETE FROM {t} WHERE workspace_id IN ($1, $2)",
                                   part, f"{part}warm")
            await conn.close()

        # 2 (b): end to end through the webhook, as fast as it answers; single, batch of 50
        if "sustained" in args.parts:
            R["sustained"] = {}
            for kind, make, per in (("single", single, 1), ("batch50", batch50, 50)):
                base += 100_000
                n_req = args.push // per
                by_time = args.sustained_seconds or None
                ws_before = await _count(s.dsn, "bench")
                meter = CpuMeter(pids)
                counts = await worker_counts(*worker_ports)
                meter.start()
                started = time.perf_counter()
                prof = (py_spy(stack.pids["worker"], by_time or max(2, n_req * per / 8000),
                               tmp / f"worker-{kind}.prof") if args.profile else None)
                push = await closed_loop(ours, make(f"push{kind}", base, args.leads),
                                         concurrency=64, seconds=by_time,
                                         total=None if by_time else n_req)
                n_req = push["requests"]
                got, done = await wait_count(s.dsn, "leads", "bench", ws_before + n_req * per, 900)
                if prof is not None:
                    prof.wait()
                    R[f"worker_{kind}_profile"] = summarize_profile(
                        tmp / f"worker-{kind}.prof", top=25)
                events = got - ws_before
                R["sustained"][kind] = {"events": n_req * per, "visible": events,
                                        "seconds": done - started, "eps": events / (done - started),
                                        "push_eps": push["requests"] * per / push["seconds"],
                                        "cpu": meter.stop()}
                R["accounting"].append({"step": f"as fast as it goes, {per} per request",
                                        **account(meter, events, n_req, counts,
                                                  await worker_counts(*worker_ports))})
                print(f"# sustained {kind}: {R['sustained'][kind]['eps']:.0f} ev/s end to end"
                      f" (pushed at {R['sustained'][kind]['push_eps']:.0f} ev/s)", flush=True)

        # 6b: the naive design's maximum rate, same pushes
        if "naive" in args.parts:
            await pause_ours(stack, True, workers)
            R["naive_max"] = {}
            for kind, make, per in (("single", single, 1), ("batch50", batch50, 50)):
                base += 100_000
                meter = CpuMeter(pids)
                meter.start()
                r = await closed_loop(naive, make(f"naive{kind}", base, args.leads),
                                      concurrency=64, seconds=args.push_seconds)
                r["eps"] = r["rps"] * per
                r["cpu"] = meter.stop()
                R["naive_max"][kind] = r
                print(f"# naive max {kind}: {r['eps']:.0f} ev/s, p99 {r['p99']:.0f} ms", flush=True)
            await pause_ours(stack, False, workers)

        # 3: webhook ingest alone (own topics, nobody consuming them): single and batch of 50
        if "ingest" in args.parts:
            for w in workers:  # their share of the CPU would be the webhook's competitor
                stack.halt(w)
            R["ingest"] = {}
            for nproc, loop in [(n, lp) for lp in args.event_loops
                                for n in args.webhook_processes]:
                s2 = stack.settings(LEADSTREAM_EVENT_LOOP=loop)
                await ensure_topics(s2)
                stack.spawn("ingest", s2, "webhook", "--processes", str(nproc))
                await wait_http(f"http://{s2.http_host}:{s2.http_port}/healthz")
                if nproc > 1:  # every child up, not just the first to answer
                    await asyncio.sleep(3)
                ingest_url = f"http://{s2.http_host}:{s2.http_port}/webhooks/kapso"
                for kind, make, per in (("single", single, 1), ("batch50", batch50, 50)):
                    base += 100_000
                    name = (kind if nproc == 1 else f"{kind}, {nproc} processes") + (
                        "" if loop == "auto" else f", {loop} loop")
                    meter = CpuMeter({"webhook": stack.pids["ingest"], "loadgen": os.getpid(),
                                      **{k: stack.pids[k] for k in ("broker",)
                                         if k in stack.pids}},
                                     with_children=("webhook",))
                    meter.start()
                    prof = None
                    if args.profile and nproc == 1:
                        prof = py_spy(stack.pids["ingest"], args.push_seconds - 1,
                                      tmp / f"webhook-{kind}.prof")
                    r = await closed_loop(ingest_url, make(f"ingest{nproc}{kind}", base,
                                                           args.leads),
                                          concurrency=64, seconds=args.push_seconds)
                    r["eps"] = r["rps"] * per
                    r["cpu"] = meter.stop()
                    R["ingest"][name] = r
                    print(f"# ingest {name}: {r['rps']:.0f} req/s = {r['eps']:.0f} ev/s, p99"
                          f" {r['p99']:.0f} ms; cpu {cpu_line(r['cpu'])}", flush=True)
                    if prof is not None:
                        prof.wait()
                        R[f"webhook_{kind}_profile"] = summarize_profile(
                            tmp / f"webhook-{kind}.prof")
                stack.halt("ingest")

        # 4: replay: rebuild the replica from the derived topics into a scratch schema
        if "replay" in args.parts:
            meter = CpuMeter({"replay": os.getpid(), **{k: pids[k] for k in ("broker", "postgres")
                                                        if k in pids}})
            prof = None
            if args.profile:
                # the replay runs in this process: sample ourselves (the verify digest after
                # it is outside the window only roughly)
                expected = await _derived_records(s) / 10_000
                prof = py_spy(os.getpid(), max(2, min(30, expected)), tmp / "replay.prof")
            meter.start()
            rep = await replay_and_verify(s, schema="bench_replay")
            R["replay"] = {"records": rep["records"], "seconds": rep["seconds"],
                           "rps": rep["records"] / rep["seconds"], "equal": rep["equal"],
                           "cpu": meter.stop()}
            if prof is not None:
                prof.wait()
                R["replay_profile"] = summarize_profile(tmp / "replay.prof")
            print(f"# replay: {R['replay']['records']} records in {rep['seconds']:.1f}s ="
                  f" {R['replay']['rps']:.0f} records/s, equal to the live replica:"
                  f" {rep['equal']}; cpu {cpu_line(R['replay']['cpu'])}", flush=True)

        # 5: limits: raw aiokafka produce/consume with the same records, raw COPY
        if "limits" in args.parts:
            R["limits"] = await limits(stack, s, args)
            print(f"# limits: {R['limits']}", flush=True)

    finally:
        stack.stop()
    return R


@contextlib.contextmanager
def held(stack: BenchStack, workers: list[str]) -> Iterator[None]:
    """The workers stopped (SIGSTOP) while a backlog is produced, and resumed on leaving:
    a worker left running had already applied 5,362 of a 50,000-event backlog when the
    produce returned (one run, session 18): events counted, their time and CPU not, which
    overstated the drain's rate and understated its CPU per event.
    A couple of seconds stopped is far inside the group's session timeout."""
    for name in workers:
        os.kill(stack.pids[name], signal.SIGSTOP)
    try:
        yield
    finally:
        for name in workers:
            os.kill(stack.pids[name], signal.SIGCONT)


async def pause_ours(stack: BenchStack, stop: bool, workers: list[str]) -> None:
    """Stop (SIGSTOP) or resume our worker and webhook while the naive design is measured:
    idle, they still cost ~0.3 core (the worker's fetches and the broker answering them,
    EMBEDDED-BROKER #5), which would be the naive design's handicap, not its cost. A resumed
    worker rejoins its groups; the next part waits for it."""
    for name in (*workers, "webhook"):
        if name in stack.procs:
            os.kill(stack.pids[name], signal.SIGSTOP if stop else signal.SIGCONT)
    if not stop:
        await asyncio.sleep(1)


async def _derived_records(s: Settings) -> int:
    names = TopicNames.from_settings(s)
    return sum((await log_ends(s, names.derived())).values())


async def _count(dsn: str, workspace: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT coalesce(sum(message_count), 0) FROM leads WHERE workspace_id = $1",
            workspace))
    finally:
        await conn.close()


async def limits(stack: BenchStack, s: Settings, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    s3 = stack.settings()
    await ensure_topics(s3)
    topic = s3.topic("events")
    recs = [inbound_record("raw", i, i % args.leads) for i in range(args.raw)]
    out["record_bytes"] = sum(len(v) for _, v in recs) / len(recs)
    out["produce"] = len(recs) / await produce(s3, topic, recs)
    consumer = make_consumer(s3, topic, group_id=None, max_poll_records=10_000,
                             fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    got = 0
    started = time.perf_counter()
    try:
        while got < len(recs) and time.perf_counter() - started < 300:
            polled = await consumer.getmany(timeout_ms=500, max_records=10_000)
            got += sum(len(v) for v in polled.values())
    finally:
        await consumer.stop()
    out["consume"] = got / (time.perf_counter() - started)
    # the database: raw COPY of lead rows, and our writer's version-guarded upsert, same rows
    conn = await asyncpg.connect(s.dsn)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS bench_limits CASCADE;"
                           " CREATE SCHEMA bench_limits;"
                           " CREATE TABLE bench_limits.leads (LIKE public.leads INCLUDING ALL)")
        sample = [dict(r) for r in await conn.fetch("SELECT * FROM leads LIMIT 1000")]
        rows = []
        for i in range(args.raw):
            r = dict(sample[i % len(sample)])
            r["lead_id"] = uuid.uuid4()
            r["lead_key"] = f"raw|{i}"
            r["phone_e164"] = "+" + phone_for(5_000_000 + i)
            rows.append(r)
        cols = list(sample[0].keys())
        started = time.perf_counter()
        for k in range(0, len(rows), 5000):
            await conn.copy_records_to_table(
                "leads", schema_name="bench_limits", columns=cols,
                records=[tuple(r[c] for c in cols) for r in rows[k:k + 5000]])
        out["copy"] = len(rows) / (time.perf_counter() - started)
        await conn.execute("TRUNCATE bench_limits.leads")
        await conn.execute("SET search_path TO bench_limits, public")
        js = [{c: (v.isoformat() if isinstance(v, datetime) else
                   str(v) if isinstance(v, uuid.UUID) else v) for c, v in r.items()
               if c in LEAD_COLUMNS} for r in rows]
        started = time.perf_counter()
        for k in range(0, len(js), 5000):
            await write_batch(conn, Batch(leads=js[k:k + 5000]))
        out["writer"] = len(js) / (time.perf_counter() - started)
        await conn.execute("DROP SCHEMA bench_limits CASCADE")
    finally:
        await conn.close()
    return out


# ----------------------------------------------------------------------------- accounting

async def worker_counts(*ports: int) -> dict[str, float]:
    """The workers' flush counters from their /metrics, summed (zeros for one that does not
    answer)."""
    want = {"leadstream_worker_flushes_total": "flushes",
            "leadstream_worker_flushed_events_total": "flushed_events",
            "leadstream_worker_records_produced_total": "records_produced",
            "leadstream_worker_replica_rows_total": "replica_rows",
            "leadstream_worker_rebalances_total": "rebalances"}
    out = dict.fromkeys(want.values(), 0.0)
    for port in ports:
        for line in (await _metrics(port)).splitlines():
            name, _, value = line.partition(" ")
            if name in want:
                out[want[name]] += float(value)
    return out


async def _metrics(port: int) -> str:
    """A worker's /metrics text ("" when it does not answer)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                http.get(f"http://127.0.0.1:{port}/metrics") as r:
            return await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def wait_assigned(ports: list[int], topic: str, timeout: float = 120) -> list[int]:
    """Wait until every worker of a fleet holds some of `topic`'s partitions and no partition
    is held twice (the group has settled), read from each worker's
    `leadstream_worker_consumer_lag` (a partition shows once fetched); the count each holds."""
    deadline = time.perf_counter() + timeout
    held: list[list[str]] = []
    while time.perf_counter() < deadline:
        held = []
        for port in ports:
            held.append([s.labels["partition"]
                         for family in text_string_to_metric_families(await _metrics(port))
                         if family.name == "leadstream_worker_consumer_lag"
                         for s in family.samples if s.labels.get("topic") == topic])
        flat = [p for h in held for p in h]
        if all(held) and len(flat) == len(set(flat)):
            return [len(h) for h in held]
        await asyncio.sleep(1)
    raise TimeoutError(f"the workers did not settle on {topic}: {held}")


def account(meter: CpuMeter, events: int, requests: int | None,
            before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """CPU milliseconds per event of each process over a step, and what the fixed costs
    were shared by: events per webhook request and per worker flush."""
    flushes = after["flushes"] - before["flushes"]
    per_event = {n: 1000 * u / events if events else 0.0 for n, u in meter.used.items()
                 if n != "naive"}  # idle beside ours
    return {"events": events, "requests": requests, "flushes": flushes,
            "events_per_request": events / requests if requests else None,
            "events_per_flush": (after["flushed_events"] - before["flushed_events"]) / flushes
            if flushes else None,
            "ms_per_event": per_event, "total_ms_per_event": sum(per_event.values()),
            "broker_jit_ms_per_event": 1000 * meter.jit / events if events else 0.0,
            "seconds": meter.wall}


def cpu_table(R: dict[str, Any]) -> str:
    """The whole box per event: one row per step, one column per process (ms of CPU)."""
    rows = list(R.get("accounting", []))
    if not rows:
        return ""
    procs = ["loadgen", "webhook", "broker", "worker", "postgres"]
    out = ["### CPU per event, whole box (ms of CPU per event visible, per process)", "",
           "(broker: in brackets, what its JIT compiler threads took of it)", "",
           "| step | events | ev/request | ev/flush | " + " | ".join(procs)
           + " | total | vs backlog |", "|---" * (len(procs) + 6) + "|"]
    drain = next((r["total_ms_per_event"] for r in rows if r["step"].startswith("backlog")),
                 None)
    for r in rows:
        per = r["ms_per_event"]
        ratio = f"{r['total_ms_per_event'] / drain:.1f}x" if drain else "-"
        epr = f"{r['events_per_request']:.0f}" if r["events_per_request"] else "-"
        epf = f"{r['events_per_flush']:.1f}" if r["events_per_flush"] else "-"
        out.append(f"| {r['step']} | {r['events']} | {epr} | {epf} | "
                   + " | ".join((f"{per[p]:.3f}" + (
                       f" ({r.get('broker_jit_ms_per_event', 0.0):.3f})" if p == "broker" else ""))
                       if p in per else "-" for p in procs)
                   + f" | {r['total_ms_per_event']:.3f} | {ratio} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------- report

def report(R: dict[str, Any], plot: Path | None) -> str:
    m = R["machine"]
    L = R["limits"]
    out = [f"machine: {m['platform']}, {m['cores']} cores, {m['memory_gib']} GiB, Python"
           f" {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
           + f"; broker {m['broker']}, {m['partitions']} partitions, producer linger"
           f" {m['producer_linger_ms']} ms, sink batch max {m['sink_batch_max']}, fetch wait"
           f" {m.get('fetch_max_wait_ms', '?')} ms", ""]
    out += ["### 1 + 6. Freshness against rate (open loop), leadstream and the naive design", "",
            "| design | rate | achieved | sent | 200 | visible | 200->visible p50/p95/p99 ms |"
            " sent->visible p50/p95/p99 ms | request p99 ms | CPU (cores) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in R["freshness"]:
        f, e = r["fresh"], r["e2e"]
        per = f" ({r.get('per', 1)} per request)" if r.get("per", 1) > 1 else ""
        out.append(f"| {r['design']} | {r['rate']}{per} | {r['achieved']:.0f} | {r['sent']} |"
                   f" {r['acked']} | {r['visible']} | {f[50]:.0f} / {f[95]:.0f} / {f[99]:.0f}"
                   f" | {e[50]:.0f} / {e[95]:.0f} / {e[99]:.0f} | {r['request'][99]:.0f} |"
                   f" {cpu_line(r['cpu'])} |")
    b = R["backlog"]
    out += ["", "### 2. Sustained throughput, one worker", "",
            "| what | events | seconds | events/s | CPU (cores) |", "|---|---|---|---|---|",
            f"| backlog on the events topic, worker alone | {b['events']} | {b['seconds']:.1f} |"
            f" {b['eps']:.0f} | {cpu_line(b['cpu'])} |"]
    for part in ("split", "perrecord"):
        if part in R:
            sp = R[part]
            out.append(f"| same, {sp.get('design', part)} | {sp['events']} |"
                       f" {sp['seconds']:.1f} | {sp['eps']:.0f} | {cpu_line(sp['cpu'])} |")
    for kind, r in R["sustained"].items():
        out.append(f"| through the webhook, {kind} (pushed at {r['push_eps']:.0f} ev/s) |"
                   f" {r['events']} | {r['seconds']:.1f} | {r['eps']:.0f} | {cpu_line(r['cpu'])} |")
    out += ["", "### 3. Webhook ingest, one process (64 concurrent clients, nobody consuming)", "",
            "| body | requests/s | events/s | p50 ms | p99 ms | errors | CPU (cores) |",
            "|---|---|---|---|---|---|---|"]
    for kind, r in R["ingest"].items():
        out.append(f"| {kind} | {r['rps']:.0f} | {r['eps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f}"
                   f" | {r['errors']} | {cpu_line(r['cpu'])} |")
    rp = R["replay"]
    out += ["", "### 4. Replay", "",
            f"{rp['records']} derived records rebuilt into a scratch schema in {rp['seconds']:.1f} s"
            f" = **{rp['rps']:.0f} records/s**; equal to the live replica: {rp['equal']};"
            f" CPU {cpu_line(rp.get('cpu', {}))}", ""]
    best = max(b["eps"], *(r["eps"] for r in R["sustained"].values()))
    out += ["### 5. Limits on the same broker and database", "",
            "| limit | rate | ours | ours as a fraction |", "|---|---|---|---|",
            f"| aiokafka produce, {L['record_bytes']:.0f}-byte records, acks=all, linger 5 ms |"
            f" {L['produce']:.0f}/s | webhook ingest batched {R['ingest']['batch50']['eps']:.0f} ev/s"
            f" | {R['ingest']['batch50']['eps'] / L['produce']:.1%} |",
            f"| aiokafka consume, same records | {L['consume']:.0f}/s | worker {best:.0f} ev/s |"
            f" {best / L['consume']:.1%} |",
            f"| asyncpg COPY into `leads` | {L['copy']:.0f} rows/s | sink writer (version-guarded"
            f" upsert) {L['writer']:.0f} rows/s | {L['writer'] / L['copy']:.1%} |",
            f"| asyncpg COPY into `leads` | {L['copy']:.0f} rows/s | replay {rp['rps']:.0f}"
            f" records/s | {rp['rps'] / L['copy']:.1%} |", ""]
    nv = R["naive_max"]
    out += ["### 6. The naive design's maximum (64 concurrent clients)", "",
            "| body | events/s | p99 ms | errors | ours end to end | ours / naive |",
            "|---|---|---|---|---|---|"]
    for kind, r in nv.items():
        o = R["sustained"][kind]["eps"]
        out.append(f"| {kind} | {r['eps']:.0f} | {r['p99']:.0f} | {r['errors']} | {o:.0f} |"
                   f" {o / r['eps']:.2f}x |")
    out += ["", cpu_table(R), "", goals(R)]
    if plot is not None:
        draw(R, plot)
        out += ["", f"plot: {plot}"]
    for name, title in (("worker_profile", "worker, backlog drain"),
                        ("worker_single_profile", "worker, end to end, single deliveries"),
                        ("worker_batch50_profile", "worker, end to end, batches of 50"),
                        ("webhook_single_profile", "webhook, single events"),
                        ("webhook_batch50_profile", "webhook, batches of 50"),
                        ("replay_profile", "replay (the suite's own process)")):
        if name in R:
            out += ["", f"### profile: {title} (py-spy)", "", R[name]]
    return "\n".join(out)


def goals(R: dict[str, Any]) -> str:
    def fresh(design: str, rate: int, per: int = 1) -> float:
        for r in R["freshness"]:
            if (r["design"] == design and r["rate"] == rate and r.get("per", 1) == per
                    and r["visible"] == r["acked"]):
                return float(r["fresh"][99])
        return float("inf")  # not all visible within the drain time, or not run

    best = max(R["backlog"]["eps"], *(r["eps"] for r in R["sustained"].values()))
    naive_best = max(r["eps"] for r in R["naive_max"].values())
    ours_best_e2e = max(r["eps"] for r in R["sustained"].values())
    rows = [
        ("freshness p99 at 1,000 ev/s", "<= 250 ms", fresh("leadstream", 1000), 250, False),
        ("freshness p99 at 3,000 ev/s, batches of 10", "<= 1,000 ms",
         fresh("leadstream", 3000, 10), 1000, False),
        ("one worker sustains", ">= 10,000 ev/s", best, 10_000, True),
        ("worker / raw consume", ">= 30%", best / R["limits"]["consume"] * 100, 30, True),
        ("webhook, single events", ">= 5,000 req/s", R["ingest"]["single"]["rps"], 5000, True),
        ("webhook, batches of 50", ">= 50,000 ev/s", R["ingest"]["batch50"]["eps"], 50_000, True),
        ("replay", ">= 50,000 ev/s", R["replay"]["rps"], 50_000, True),
        ("vs the naive design (end to end)", ">= 5x", ours_best_e2e / naive_best, 5, True),
    ]
    out = ["### Goals", "", "| goal | target | measured | met? |", "|---|---|---|---|"]
    for name, target, got, bound, higher in rows:
        ok = got >= bound if higher else got <= bound
        how = "met" if ok else (f"missed: {got / bound:.2f} of it" if higher else
                                f"missed: {got / bound:.1f}x over")
        shown = "not all visible" if got == float("inf") else f"{got:,.1f}"
        out.append(f"| {name} | {target} | {shown} | {how} |")
    return "\n".join(out)


def draw(R: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("# no plot: matplotlib is not installed (pip install -e '.[bench]')")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for design, field, label, style in (
            ("leadstream", "fresh", "leadstream 200->visible", "-"),
            ("leadstream", "e2e", "leadstream sent->visible", "--"),
            ("naive", "e2e", "naive sent->visible", ":")):
        rs = [r for r in R["freshness"] if r["design"] == design and r.get("per", 1) == 1]
        for p, marker in ((50, "o"), (99, "s")):
            ax.plot([r["rate"] for r in rs], [max(1.0, r[field][p]) for r in rs], style,
                    marker=marker, label=f"{label} p{p}")
    ax.axhline(1000, color="grey", lw=0.8)
    ax.axhline(250, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (events/s, open loop)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Freshness against rate ({R['machine']['cores']} cores, everything on one box)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="200,1000,3000",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--batched-rates", default="3000",
                    type=lambda s: [int(x) for x in s.split(",") if x],
                    help="freshness steps with 10 events per request (a Kapso batch)")
    ap.add_argument("--seconds", type=float, default=30.0, help="per freshness step")
    ap.add_argument("--drain", type=float, default=240.0,
                    help="how long a step may take to show its last event")
    ap.add_argument("--leads", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--backlog", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes in one group (their CPU summed as the worker's)")
    ap.add_argument("--push", type=int, default=20_000, help="events pushed end to end")
    ap.add_argument("--push-seconds", type=float, default=10.0)
    ap.add_argument("--sustained-seconds", type=float, default=10.0,
                    help="end to end: push for this long, as the naive design's step does"
                         " (0: push --push events instead)")
    ap.add_argument("--loadgen", choices=("aiohttp", "raw"), default="raw",
                    help="the load generator's HTTP client: a lean keep-alive client"
                         " (bench/loadgen.py) or aiohttp's")
    ap.add_argument("--raw", type=int, default=100_000, help="records for the raw limits")
    ap.add_argument("--webhook-processes", default="1,2",
                    type=lambda s: [int(x) for x in s.split(",")],
                    help="webhook ingest with `webhook --processes N`, for each N")
    ap.add_argument("--event-loops", default="auto", type=lambda s: s.split(","),
                    help="webhook ingest under each LEADSTREAM_EVENT_LOOP given (auto: uvloop"
                         " where installed), e.g. auto,asyncio side by side")
    ap.add_argument("--designs", default="leadstream,naive", type=lambda s: s.split(","),
                    help="the designs the freshness steps run (naive: the comparison)")
    ap.add_argument("--warmup-rate", type=int, default=500)
    ap.add_argument("--warmup-seconds", type=float, default=10.0)
    ap.add_argument("--warmup-max", type=float, default=60.0,
                    help="seconds of warm-up more at most, until the broker's JIT is quiet")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-rate", type=int, default=0,
                    help="py-spy the worker and the webhook during this single-delivery rate")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default=",".join(PARTS), type=lambda s: s.split(","),
                    help="a subset of " + ",".join(PARTS) + " (then only JSON is printed)")
    ap.add_argument("--plot", type=Path, default=Path("docs/bench-freshness.png"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--brokers", default=os.environ.get("LEADSTREAM_EMBEDDED_BROKER", "auto"),
                    type=lambda s: s.split(","),
                    help="embedded brokers to run on, back to back (kafka,tansu: side by side)")
    args = ap.parse_args()
    LOADGEN["kind"] = args.loadgen
    if args.quick:
        args.rates, args.seconds, args.drain = [100, 300], 3.0, 60.0
        args.backlog, args.push, args.push_seconds, args.raw = 3000, 2000, 3.0, 10_000
        args.sustained_seconds = min(args.sustained_seconds, 3.0)
    runs: dict[str, dict[str, Any]] = {}
    for broker in args.brokers:
        args.broker = broker
        runs[broker] = R = asyncio.run(run(args))
        if args.json:  # after each broker: a failure later keeps what was measured
            args.json.write_bytes(orjson.dumps(runs if len(runs) > 1 else R,
                                               option=orjson.OPT_INDENT_2
                                               | orjson.OPT_NON_STR_KEYS))
        print()
        if set(args.parts) >= set(PARTS):
            print(report(R, args.plot if broker == args.brokers[0] else None))
        else:
            print(orjson.dumps(R, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
            print()
            print(cpu_table(R))
            for name in sorted(k for k in R if "_profile_" in k):
                print(f"\n### {name}\n\n{R[name]}")
    if args.json:
        args.json.write_bytes(orjson.dumps(runs if len(runs) > 1 else R,
                                           option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if len(runs) > 1:
        print()
        print(side_by_side(runs))


def side_by_side(runs: dict[str, dict[str, Any]]) -> str:
    """The key figures of each broker's run in one table (same machine, back to back)."""
    def get(R: dict[str, Any], *path: Any) -> str:
        v: Any = R
        for k in path:
            if not isinstance(v, dict) or k not in v:
                return "-"
            v = v[k]
        return f"{v:,.0f}" if isinstance(v, int | float) else str(v)

    rows: list[tuple[str, tuple[Any, ...]]] = [
        ("raw produce (rec/s)", ("limits", "produce")),
        ("raw consume (rec/s)", ("limits", "consume")),
        ("worker backlog drain (ev/s)", ("backlog", "eps")),
        ("  same, replica written by the sink (ev/s)", ("split", "eps")),
        ("  same, per-record path (ev/s)", ("perrecord", "eps")),
        ("webhook single (req/s)", ("ingest", "single", "rps")),
        ("webhook batch of 50 (ev/s)", ("ingest", "batch50", "eps")),
        ("replay (rec/s)", ("replay", "rps")),
    ]
    names = list(runs)
    out = ["| measure | " + " | ".join(runs[n]["machine"]["broker"] for n in names) + " |",
           "|---|" + "---|" * len(names)]
    for label, path in rows:
        out.append(f"| {label} | " + " | ".join(get(runs[n], *path) for n in names) + " |")
    rates = sorted({(r["rate"], r.get("per", 1)) for n in names
                    for r in runs[n].get("freshness", []) if r["design"] == "leadstream"})
    for rate, per in rates:
        cells = []
        for n in names:
            hit = [r for r in runs[n].get("freshness", [])
                   if r["design"] == "leadstream" and r["rate"] == rate
                   and r.get("per", 1) == per]
            cells.append(f"{hit[0]['fresh'][99]:,.0f}" if hit else "-")
        what = f"{rate} ev/s" + (f", {per} per request" if per > 1 else "")
        out.append(f"| freshness p99 at {what} (ms) | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
