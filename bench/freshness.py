"""Benchmark: webhook->Postgres freshness and one worker's sustained throughput.

Not a test: it prints figures (and appends nothing anywhere); copy them into BENCHMARKS.md.

    python bench/freshness.py --rates 200,1000 --seconds 20 --backlog 20000

1. Freshness: open-loop load (requests leave on schedule, not after the previous answer)
   of signed Kapso messages against a `leadstream webhook` process; for each one, the time
   from its 200 to the moment its `leads` row shows the new message count. The moment is
   taken from a NOTIFY sent by a trigger that only this benchmark installs.
2. Throughput: a backlog of N inbound events produced straight to the events topic, then the
   time one worker (agent + sink) takes to make all of them visible in Postgres.

Starts its own embedded broker and Postgres unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
are set; the webhook and the worker are separate processes, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

from leadstream.broker.clients import ensure_topics, make_producer
from leadstream.config import Settings
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace
from leadstream.domain.identity import lead_key
from leadstream.domain.model import InboundEvent, MessageInfo
from leadstream.simulate import kapso_message, open_loop, phone_for, signed
from leadstream.streams.records import encode

TRIGGER = """
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('bench_leads', NEW.phone_e164 || ' ' || NEW.message_count);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_notify ON leads;
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE ON leads
  FOR EACH ROW EXECUTE FUNCTION bench_notify();
"""


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


class Stack:
    def __init__(self, tmp: Path, partitions: int) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.embedded: list[object] = []
        self.partitions = partitions

    def start(self) -> Settings:
        env: dict[str, object] = {}
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            from leadstream.embedded.broker import EmbeddedBroker

            b = EmbeddedBroker(self.tmp).start()
            self.embedded.append(b)
            env.update(KAFKA_BOOTSTRAP_SERVERS=b.bootstrap, LEADSTREAM_KAFKA_FLAVOR="tansu")
        if not os.environ.get("DATABASE_URL"):
            from leadstream.embedded.postgres import EmbeddedPostgres

            pg = EmbeddedPostgres(self.tmp / "pg").start()
            self.embedded.append(pg)
            env["DATABASE_URL"] = pg.url
        tag = uuid.uuid4().hex[:6]
        return Settings(**env, LEADSTREAM_TOPIC_PREFIX=f"bench{tag}",  # type: ignore[arg-type]
                        LEADSTREAM_APP_ID=f"bench-{tag}", LEADSTREAM_SINK_GROUP=f"bsink-{tag}",
                        LEADSTREAM_DATA_DIR=self.tmp / "data",
                        LEADSTREAM_TOPIC_PARTITIONS=self.partitions,
                        LEADSTREAM_HTTP_PORT=_free_port(), LEADSTREAM_LOG_LEVEL="warning")

    def spawn(self, settings: Settings, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{args[0]}.log", "ab")
        p = subprocess.Popen([sys.executable, "-m", "leadstream", *args],
                             env={**os.environ, **settings.to_env()}, stdout=log,
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for e in reversed(self.embedded):
            e.stop()  # type: ignore[attr-defined]


def _free_port() -> int:
    from leadstream.embedded.procs import free_port

    return free_port()


async def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(url)


async def freshness(settings: Settings, rate: int, seconds: float, leads: int, run: str,
                    lead_base: int) -> dict[str, float]:
    """Open-loop load at `rate`; returns latency percentiles (ms) and counts.

    The sink writes only the newest snapshot of a lead per batch, so an event is visible
    from the first notification whose message_count reaches the event's own count.
    """
    seen: dict[str, list[tuple[int, float]]] = {}

    def on_notify(*a: object) -> None:
        phone, _, count = str(a[3]).partition(" ")
        seen.setdefault(phone, []).append((int(count), time.perf_counter()))

    def visible_at(key: str) -> float | None:
        phone, _, count = key.partition(" ")
        for c, t in seen.get(phone, ()):
            if c >= int(count):
                return t
        return None

    listener = await asyncpg.connect(settings.dsn)
    await listener.add_listener("bench_leads", on_notify)
    acked: dict[str, float] = {}
    errors = 0
    counts: dict[int, int] = {}
    base = f"http://{settings.http_host}:{settings.http_port}/webhooks/kapso"
    total = int(rate * seconds)
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def one(i: int) -> None:
            nonlocal errors
            lead = lead_base + i % leads
            counts[lead] = counts.get(lead, 0) + 1
            expect = f"+{phone_for(lead)} {counts[lead]}"
            body = kapso_message("bench-pnid", wa_id=phone_for(lead),
                                 wamid=f"wamid.{run}.{i}", text="Halo kak, mau tanya harga",
                                 ts=int(time.time()), name=f"Lead {lead}")
            raw, sig = signed("bench-secret", body)
            try:
                async with session.post(base, data=raw, headers={
                        "X-Webhook-Event": "whatsapp.message.received",
                        "X-Webhook-Signature": sig}) as r:
                    await r.read()
                    if r.status == 200:
                        acked[expect] = time.perf_counter()
                    else:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1

        send_elapsed = await open_loop(rate, total, one)
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and any(visible_at(k) is None for k in acked):
        await asyncio.sleep(0.05)
    await listener.close()
    lat = [(v - t) * 1000 for k, t in acked.items() if (v := visible_at(k)) is not None]
    # a row can be visible before the 200 reaches the client: that is freshness 0
    lat = [max(0.0, x) for x in lat]
    return {"rate": rate, "sent": total, "acked": len(acked), "errors": errors,
            "visible": len(lat), "achieved_rate": total / send_elapsed,
            "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
            "max": max(lat) if lat else float("nan"),
            "mean": statistics.fmean(lat) if lat else float("nan")}


async def throughput(settings: Settings, n: int, leads: int) -> dict[str, float]:
    """Produce a backlog of `n` events, then time until the replica shows all of them."""
    producer = make_producer(settings, linger_ms=5)
    await producer.start()
    now = datetime.now(UTC)
    topic = settings.topic("events")
    futures = []
    for i in range(n):
        lead = i % leads
        phone = "+" + phone_for(lead + 500_000)
        key = lead_key("backlog", phone)
        ev = InboundEvent(
            event_id=f"bench:{i}", kind="message", event_type="whatsapp.message.received",
            workspace_id="backlog", lead_key=key, identity=phone, phone_e164=phone,
            occurred_at=now, received_at=now, contact_name=f"Backlog {lead}",
            message=MessageInfo(wamid=f"wamid.backlog.{i}", direction="inbound",
                                text="Halo kak", status="received", timestamp=now))
        futures.append(await producer.send(topic, encode(ev), key=key.encode()))
    await asyncio.gather(*futures)
    await producer.stop()
    conn = await asyncpg.connect(settings.dsn)
    start = time.perf_counter()
    want = n
    got = 0
    while time.perf_counter() - start < 600:
        got = await conn.fetchval("SELECT coalesce(sum(message_count),0) FROM leads"
                                  " WHERE workspace_id = 'backlog'")
        if got >= want:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - start
    await conn.close()
    return {"events": n, "leads": leads, "visible": got, "seconds": elapsed,
            "events_per_s": got / elapsed}


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lsbench-"))
    stack = Stack(tmp, args.partitions)
    settings = stack.start()
    try:
        await ensure_topics(settings)
        await migrate_url(settings.dsn)
        conn = await asyncpg.connect(settings.dsn)
        await add_workspace(conn, workspace_id="bench", phone_number_id="bench-pnid",
                            webhook_secret="bench-secret", api_token=None)
        await conn.execute(TRIGGER)
        await conn.close()
        stack.spawn(settings, "worker")
        stack.spawn(settings, "webhook")
        await _wait_http(f"http://{settings.http_host}:{settings.http_port}/healthz")
        # warm up: wait until the worker has joined and processes
        warm = await freshness(settings, 20, 3, 10, "warm", lead_base=0)
        print(f"# warm-up: {warm['visible']}/{warm['acked']} visible", flush=True)
        print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python "
              f"{platform.python_version()}; partitions={args.partitions}; broker="
              f"{settings.kafka_flavor}")
        print("\n| rate (ev/s) | achieved | sent | 200 | visible | p50 ms | p95 ms | p99 ms |"
              " max ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n, rate in enumerate(args.rates, start=1):
            r = await freshness(settings, rate, args.seconds, args.leads, f"r{rate}",
                                lead_base=n * 100_000)
            print(f"| {rate} | {r['achieved_rate']:.0f} | {r['sent']} | {r['acked']} |"
                  f" {r['visible']} | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} |"
                  f" {r['max']:.0f} |", flush=True)
        if args.backlog:
            t = await throughput(settings, args.backlog, args.leads)
            print(f"\nthroughput: {t['visible']}/{t['events']} backlog events over {t['leads']}"
                  f" leads visible in {t['seconds']:.1f}s = {t['events_per_s']:.0f} events/s"
                  " (one worker: agent + sink)")
    finally:
        stack.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="200,1000",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--leads", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--backlog", type=int, default=20000)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
