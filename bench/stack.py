"""What the benchmarks share: the stack (embedded broker and Postgres, webhook and worker
processes), percentiles, CPU time per process from /proc (to say where the time goes), and
inbound records to produce straight to the events topic.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from leadstream.config import Settings
from leadstream.domain.identity import lead_key
from leadstream.domain.model import InboundEvent, MessageInfo
from leadstream.embedded.procs import free_port
from leadstream.simulate import phone_for
from leadstream.streams.records import encode

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def inbound_record(workspace: str, i: int, lead: int, at: datetime | None = None,
                   text: str = "Halo kak, mau tanya harga paket bulanan") -> tuple[bytes, bytes]:
    """(key, value) of the i-th inbound message, from lead number `lead`, as the webhook
    would have produced it."""
    at = at or datetime.now(UTC)
    phone = "+" + phone_for(lead)
    key = lead_key(workspace, phone)
    ev = InboundEvent(
        event_id=f"{workspace}:{i}", kind="message", event_type="whatsapp.message.received",
        workspace_id=workspace, lead_key=key, identity=phone, phone_e164=phone,
        occurred_at=at, received_at=at, contact_name=f"Lead {lead}",
        message=MessageInfo(wamid=f"wamid.{workspace}.{i}", direction="inbound", text=text,
                            status="received", timestamp=at))
    return key.encode(), encode(ev)


def proc_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _cpu_seconds(pid: int, reaped_children: bool = False, task: str = "") -> float:
    """utime + stime; with `reaped_children` also the CPU of children that have exited
    (Postgres backends come and go); `task`: one thread's only ("task/<tid>": `/proc/<tid>`
    itself counts the whole process)."""
    try:
        with open(f"/proc/{pid}/{task}/stat" if task else f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks / CLOCK_TICKS


#: the JVM's just-in-time compiler threads (`comm`, cut to 15 characters by the kernel)
JIT_THREADS = (b"C1 CompilerThre", b"C2 CompilerThre")


def _jit_seconds(pid: int) -> float:
    """CPU of a JVM's compiler threads: work done once after a start, not per event (the
    first step after a warm-up still had 0.13-0.46 core of it, BENCHMARKS.md session 16)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(_cpu_seconds(pid, task=f"task/{tid}") for tid in tids
               if _comm(f"/proc/{pid}/task/{tid}/comm") in JIT_THREADS)


def _comm(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read().rstrip(b"\n")
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


class CpuMeter:
    """CPU seconds per named process; Postgres's backends (its children) count towards it."""

    def __init__(self, pids: Mapping[str, int | tuple[int, ...]],
                 with_children: tuple[str, ...] = ("postgres",)) -> None:
        self.pids = pids
        self.with_children = with_children
        self.before: dict[str, float] = {}
        self.started = 0.0
        self.wall = 0.0
        self.used: dict[str, float] = {}
        #: of the broker's CPU in `used`, the seconds its JIT compiler threads took
        self.jit = 0.0
        self._jit_before = 0.0

    def _now(self) -> dict[str, float]:
        out = {}
        for name, pids in self.pids.items():
            out[name] = 0.0
            for pid in (pids,) if isinstance(pids, int) else pids:  # a fleet: summed
                if name in self.with_children:
                    out[name] += _cpu_seconds(pid, True) + sum(_cpu_seconds(c)
                                                               for c in _children(pid))
                else:
                    out[name] += _cpu_seconds(pid)
        return out

    def _jit_now(self) -> float:
        broker = self.pids.get("broker")
        return _jit_seconds(broker) if isinstance(broker, int) else 0.0

    def start(self) -> None:
        self.before = self._now()
        self._jit_before = self._jit_now()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """Share of one core each process used since `start` (1.0 = a whole core); the CPU
        seconds themselves stay in `used` (the CPU-per-event table)."""
        self.wall = time.perf_counter() - self.started
        now = self._now()
        self.used = {n: now[n] - self.before.get(n, 0.0) for n in now}
        self.jit = self._jit_now() - self._jit_before
        return {n: u / self.wall for n, u in self.used.items()}


def cpu_line(shares: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:.2f}" for n, v in shares.items())


def py_spy(pid: int, seconds: float, out: Path, threads: bool = False
           ) -> subprocess.Popen[bytes] | None:
    """py-spy `pid` into a raw profile; `threads`: each stack starts with its thread."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("# py-spy not installed (pip install py-spy): no profile", flush=True)
        return None
    return subprocess.Popen([str(exe), "record", "-p", str(pid), "-d", str(int(seconds)),
                             "-f", "raw", "-o", str(out), "--nonblocking",
                             *(["--threads"] if threads else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 12) -> str:
    """Self and inclusive shares of the hottest frames of a py-spy raw profile."""
    from collections import Counter

    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return "(no profile)"
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        k = int(n)
        total += k
        frames = stack.split(";")
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return "(empty profile)"
    wanted = [f for f, _ in incl.most_common(200)
              if any(m in f for m in ("leadstream/", "faust/", "aiokafka/", "pydantic/",
                                      "asyncpg/", "aiohttp/", "selector", "logging"))]
    lines = ["| frame | self % | incl % |", "|---|---|---|"]
    for f in wanted[:top]:
        lines.append(f"| `{f[:90]}` | {own[f] / total * 100:.1f} | {incl[f] / total * 100:.1f} |")
    lines.append("")
    lines.append("hottest self frames: " + "; ".join(
        f"`{f[:70]}` {c / total * 100:.1f}%" for f, c in own.most_common(8)))
    return "\n".join(lines)


class BenchStack:
    """Embedded broker + Postgres (unless given), and leadstream processes as children."""

    def __init__(self, tmp: Path, partitions: int = 8, broker: str | None = None) -> None:
        self.tmp = tmp
        self.partitions = partitions
        #: auto|kafka|tansu (LEADSTREAM_EMBEDDED_BROKER when not given)
        self.broker_kind = broker or os.environ.get("LEADSTREAM_EMBEDDED_BROKER", "auto")
        self.broker_name = "external"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.embedded: list[Any] = []
        self.pids: dict[str, int] = {}
        self.base_env: dict[str, Any] = {}

    def start(self, **extra: Any) -> Settings:
        env: dict[str, Any] = {}
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            from leadstream.embedded.broker import start_broker

            b = start_broker(self.broker_kind, self.tmp / "broker")
            self.embedded.append(b)
            self.broker_name = b.name
            self.pids["broker"] = b.pids()[0]
            env.update(KAFKA_BOOTSTRAP_SERVERS=b.bootstrap, LEADSTREAM_KAFKA_FLAVOR=b.flavor)
        if not os.environ.get("DATABASE_URL"):
            from leadstream.embedded.postgres import EmbeddedPostgres

            pg = EmbeddedPostgres(self.tmp / "pg").start()
            self.embedded.append(pg)
            assert pg.proc is not None
            self.pids["postgres"] = pg.proc.pid
            env["DATABASE_URL"] = pg.url
        self.base_env = env
        return self.settings(**extra)

    def settings(self, **env: Any) -> Settings:
        """Fresh topic prefix, app id and groups, so one stack holds several experiments."""
        tag = uuid.uuid4().hex[:6]
        values: dict[str, Any] = {
            **self.base_env,
            "LEADSTREAM_TOPIC_PREFIX": f"bench{tag}", "LEADSTREAM_APP_ID": f"bench-{tag}",
            "LEADSTREAM_SINK_GROUP": f"bsink-{tag}", "LEADSTREAM_DATA_DIR": self.tmp / "data",
            "LEADSTREAM_TOPIC_PARTITIONS": self.partitions, "LEADSTREAM_HTTP_PORT": free_port(),
            "LEADSTREAM_WORKER_HTTP_PORT": free_port(), "LEADSTREAM_LOG_LEVEL": "warning", **env,
        }
        return Settings(**values)  # through __init__, so LEADSTREAM_* in the environment apply

    def spawn(self, name: str, settings: Settings, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115  # the child writes it for its life
        p = subprocess.Popen([sys.executable, "-m", "leadstream", *args],
                             env={**os.environ, **settings.to_env()}, stdout=log,
                             stderr=subprocess.STDOUT)
        self.procs[name] = p
        self.pids[name] = p.pid
        return p

    def spawn_py(self, name: str, settings: Settings, script: Path, *args: str
                 ) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115  # the child writes it for its life
        p = subprocess.Popen([sys.executable, str(script), *args],
                             env={**os.environ, **settings.to_env()}, stdout=log,
                             stderr=subprocess.STDOUT)
        self.procs[name] = p
        self.pids[name] = p.pid
        return p

    def halt(self, name: str) -> None:
        p = self.procs.pop(name)
        self.pids.pop(name, None)
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.halt(name)
        for e in reversed(self.embedded):
            e.stop()


async def wait_http(url: str, timeout: float = 60) -> None:
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
