"""A living sales line, through the public interfaces only (issue #19): Indonesian SME owners
write in over WhatsApp, Sarah qualifies them phase by phase, the business answers (the bot,
and sometimes a person from the WhatsApp Business app), delivery statuses arrive (sometimes
out of order, sometimes twice), the Brain bot and a salesperson move statuses and leave notes,
and some conversations happened on earlier days, so their daily summaries appear.

Everything goes through the signed webhook and the bearer-token API, so a run is also a smoke
test of the contract: `SalesLine.failed` counts every request that did not get its 2xx.

Each run uses new phone numbers and message ids (from `seed`, random unless given), so a
second run adds new traffic instead of redelivering the first.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from leadstream.simulate.kapso import kapso_message, phone_for, post_kapso

DAY = 86_400


@dataclass(frozen=True)
class Credentials:
    """The demo workspace's (see `embedded.stack.DEMO`), or a real one's."""

    phone_number_id: str = "demo-pnid"
    secret: str = "demo-secret"
    sarah_token: str = "demo-sarah-token"
    brain_token: str = "demo-brain-token"
    human_token: str = "demo-token"


@dataclass(frozen=True)
class Persona:
    business_type: str
    domisili: str
    duration: str
    pains: tuple[str, ...]
    opener: str
    detail: str
    question: str


PERSONAS = (
    Persona("warung makan", "Bandung", "3 tahun", ("stok sering selisih", "catatan manual"),
            "Halo kak, mau tanya aplikasi kasirnya", "Saya punya warung makan di Bandung, "
            "sudah 3 tahun", "Stok sering selisih, bisa bantu?"),
    Persona("toko kelontong", "Surabaya", "7 tahun", ("utang pelanggan tidak tercatat",),
            "Permisi, ini yang aplikasi pembukuan ya?", "Toko kelontong di Surabaya, "
            "lumayan ramai", "Banyak pelanggan ngutang, susah dicatat"),
    Persona("laundry kiloan", "Yogyakarta", "2 tahun", ("nota hilang", "antrian numpuk"),
            "Siang kak, lihat iklannya di IG", "Usaha laundry kiloan di Jogja",
            "Nota sering hilang, pelanggan komplain"),
    Persona("bengkel motor", "Medan", "5 tahun", ("stok sparepart", "laporan harian"),
            "Bang, bisa untuk bengkel?", "Bengkel motor, 3 mekanik",
            "Stok sparepart tidak jelas, laporan harian repot"),
    Persona("kedai kopi", "Jakarta Selatan", "1 tahun", ("promo tidak terukur",),
            "Halo, mau konsultasi untuk kedai kopi", "Kedai kopi kecil di Jaksel, baru setahun",
            "Mau tahu promo mana yang laku"),
    Persona("toko baju online", "Bekasi", "4 tahun", ("pesanan dobel", "ongkir salah"),
            "Kak, aplikasinya bisa sambung ke marketplace?", "Jualan baju online dari Bekasi",
            "Sering pesanan dobel dan ongkir salah hitung"),
    Persona("katering rumahan", "Semarang", "6 tahun", ("jadwal antar kacau",),
            "Assalamualaikum, mau tanya harga paket", "Katering rumahan di Semarang",
            "Jadwal antar sering bentrok"),
    Persona("apotek", "Makassar", "10 tahun", ("obat kedaluwarsa", "stok opname lama"),
            "Selamat pagi, untuk apotek ada fiturnya?", "Apotek keluarga di Makassar",
            "Obat kedaluwarsa sering tidak ketahuan"),
)
NAMES = ("Budi Santoso", "Siti Rahma", "Agus Wijaya", "Dewi Lestari", "Rudi Hartono",
         "Ayu Pratiwi", "Joko Susilo", "Putri Maharani", "Hendra Gunawan", "Rina Marlina",
         "Fajar Nugroho", "Wulan Sari", "Bayu Saputra", "Indah Permata", "Eko Prasetyo")
REPLIES = ("Halo kak, terima kasih sudah menghubungi kami. Boleh tahu nama kakak?",
           "Baik kak, boleh ceritakan usahanya?",
           "Kami bisa bantu pencatatan stok otomatis dan laporan harian.",
           "Paket bulanan mulai Rp99 ribu, ada uji coba 14 hari gratis.")
FATES = ("new", "qualified", "contacted", "converted", "archived")

Step = Callable[[], Awaitable[bool]]


@dataclass
class Customer:
    n: int
    wa_id: str
    name: str
    persona: Persona
    fate: str
    #: when the conversation happened: now, or 1-3 days ago (for the daily summaries)
    start_ts: int
    steps: list[tuple[str, Step]] = field(default_factory=list)
    lead_id: str | None = None
    retries: int = 0


class SalesLine:
    """`await run(duration)` plays the line; `sent` and `failed` count requests by kind."""

    def __init__(self, base: str, creds: Credentials, *, seed: int | None = None,
                 rate: float = 5.0, concurrent: int = 12, past_share: float = 0.3) -> None:
        self.base = base.rstrip("/")
        self.creds = creds
        self.seed = seed if seed is not None else random.SystemRandom().randrange(10**9)
        self.rnd = random.Random(self.seed)
        self.rate = rate
        self.concurrent = concurrent
        self.past_share = past_share
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.errors: list[str] = []
        self._n = 0
        self._wamid = 0
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ the run

    async def run(self, duration: float | None = None,
                  stop: asyncio.Event | None = None) -> dict[str, Any]:
        """Play until `duration` seconds passed or `stop` is set (None, None: forever).
        Conversations dated on earlier days go first, so their summaries show early."""
        started = time.monotonic()
        active: list[Customer] = []
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=15)) as self._session:
            i = 0
            while True:
                if duration is not None and time.monotonic() - started >= duration:
                    break
                if stop is not None and stop.is_set():
                    break
                while len(active) < self.concurrent:
                    active.append(self._customer(past=len(active) < 3 and self._n < 9))
                c = self.rnd.choice(active)
                kind, step = c.steps[0]
                ok = await step()
                if ok:
                    c.steps.pop(0)
                    c.retries = 0
                elif c.retries < 60:  # the lead is not in the replica yet: later
                    c.retries += 1
                else:
                    c.steps.pop(0)
                    self.failed[kind] += 1
                if not c.steps:
                    active.remove(c)
                i += 1
                await asyncio.sleep(max(0.0, started + i / self.rate - time.monotonic()))
        return self.report(time.monotonic() - started)

    def report(self, seconds: float) -> dict[str, Any]:
        return {"seed": self.seed, "seconds": round(seconds, 1), "customers": self._n,
                "sent": dict(sorted(self.sent.items())),
                "failed": dict(sorted(self.failed.items())), "errors": self.errors[:5]}

    # ------------------------------------------------------------------ a customer

    def _customer(self, past: bool) -> Customer:
        n = self._n
        self._n += 1
        rnd = self.rnd
        days_ago = rnd.choice((1, 2, 3)) if past or rnd.random() < self.past_share / 3 else 0
        fate = FATES[n % len(FATES)] if n < len(FATES) * 2 else rnd.choice(FATES)
        # a number per customer; the seed picks the block, so every run has new leads
        c = Customer(n=n, wa_id=phone_for(self.seed % 9_000_000 + 1_000_000 + n * 7),
                     name=rnd.choice(NAMES), persona=rnd.choice(PERSONAS), fate=fate,
                     start_ts=int(time.time()) - days_ago * DAY - rnd.randrange(3600))
        c.steps = self._script(c)
        return c

    def _script(self, c: Customer) -> list[tuple[str, Step]]:
        p = c.persona
        first = c.name.split()[0]
        t = c.start_ts
        steps: list[tuple[str, Step]] = [
            ("inbound", self._inbound(c, p.opener, t)),
            ("sarah", self._sarah(c, "greeting", {})),
            ("outbound", self._outbound(c, REPLIES[0], t + 40)),
            ("inbound", self._inbound(c, f"Saya {first}", t + 90)),
            ("sarah", self._sarah(c, "collect_name", {"name": c.name}, score=25)),
        ]
        if c.fate == "new":
            return steps
        steps += [
            ("outbound", self._outbound(c, REPLIES[1], t + 150)),
            ("inbound", self._inbound(c, p.detail, t + 260)),
            ("sarah", self._sarah(c, "listening", {
                "business_type": p.business_type, "domisili": p.domisili,
                "business_duration": p.duration, "pain_points": list(p.pains[:1])},
                score=self.rnd.randrange(40, 66),
                temperature=self.rnd.choice(("lukewarm", "warm")))),
        ]
        if c.fate == "qualified":
            return steps
        steps += [
            ("outbound", self._outbound(c, REPLIES[2], t + 330)),
            ("inbound", self._inbound(c, p.question, t + 420)),
            ("sarah", self._sarah(c, "solution_match", {
                "pain_points": list(p.pains), "priority": self.rnd.choice(("tinggi", "sedang")),
                "urgency_level": self.rnd.choice(("high", "medium")),
                "next_step": "jadwalkan demo"},
                score=self.rnd.randrange(68, 95), temperature="hot")),
            ("outbound", self._outbound(c, REPLIES[3], t + 480)),
            ("brain", self._status(c, self.creds.brain_token, "contacted",
                                   "Lead panas, siap dihubungi sales")),
            ("outbound", self._outbound(
                c, f"Halo {first}, saya Dewi dari tim sales. Kapan bisa demo?", t + 600,
                origin="business_app")),
            ("note", self._note(c, f"Sudah telepon {first}; minta demo hari Selasa jam 10.")),
        ]
        if c.fate == "converted":
            steps += [("inbound", self._inbound(c, "Oke kak, saya ambil paket tahunan",
                                                t + 900)),
                      ("human", self._status(c, self.creds.human_token, "converted",
                                             "Deal paket tahunan"))]
        elif c.fate == "archived":
            steps += [("inbound", self._inbound(c, "Maaf kak, belum ada budget", t + 900)),
                      ("human", self._status(c, self.creds.human_token, "archived",
                                             "Belum ada budget, hubungi lagi kuartal depan"))]
        return steps

    # ------------------------------------------------------------------ the steps

    def _next_wamid(self) -> str:
        self._wamid += 1
        return f"wamid.sim{self.seed}.{self._wamid}"

    async def _kapso(self, kind: str, event: str, body: dict[str, Any]) -> bool:
        assert self._session is not None
        try:
            status = await post_kapso(self._session, self.base, self.creds.secret, event, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._error(kind, repr(exc))
            return True  # counted as failed; the script goes on
        if status != 200:
            self._error(kind, f"webhook answered {status}")
        else:
            self.sent[kind] += 1
        return True

    def _error(self, kind: str, what: str) -> None:
        self.failed[kind] += 1
        if len(self.errors) < 20:
            self.errors.append(f"{kind}: {what}")

    def _inbound(self, c: Customer, text: str, ts: int) -> Step:
        async def step() -> bool:
            body = kapso_message(self.creds.phone_number_id, wa_id=c.wa_id,
                                 wamid=self._next_wamid(), text=text, ts=ts, name=c.name)
            await self._kapso("inbound", "whatsapp.message.received", body)
            if self.rnd.random() < 0.1:  # Kapso retried: the same delivery again
                await self._kapso("redelivery", "whatsapp.message.received", body)
            return True
        return step

    def _outbound(self, c: Customer, text: str, ts: int, origin: str = "cloud_api") -> Step:
        async def step() -> bool:
            wamid = self._next_wamid()
            body = kapso_message(self.creds.phone_number_id, wa_id=c.wa_id, wamid=wamid,
                                 text=text, ts=ts, direction="outbound", origin=origin)
            await self._kapso("outbound", "whatsapp.message.sent", body)
            statuses = ["delivered", "read"]
            if self.rnd.random() < 0.25:
                statuses.reverse()  # receipts overtake each other
            for st in statuses if self.rnd.random() < 0.8 else statuses[:1]:
                receipt = kapso_message(self.creds.phone_number_id, wa_id=c.wa_id, wamid=wamid,
                                        text=text, ts=ts + 5, direction="outbound",
                                        origin=origin, status=st)
                await self._kapso("status", f"whatsapp.message.{st}", receipt)
            return True
        return step

    def _sarah(self, c: Customer, phase: str, fields: dict[str, Any], score: int | None = None,
               temperature: str | None = None) -> Step:
        async def step() -> bool:
            body: dict[str, Any] = {"contact_phone": "+" + c.wa_id, "chat_phase": phase,
                                    "extracted_data": fields}
            if score is not None:
                body["lead_score"] = score
            if temperature is not None:
                body["lead_temperature"] = temperature
            return await self._api("sarah", "POST", "/api/sarah/state", self.creds.sarah_token,
                                   body)
        return step

    def _status(self, c: Customer, token: str, status: str, reason: str) -> Step:
        async def step() -> bool:
            if not await self._find(c):
                return False
            kind = "brain" if token == self.creds.brain_token else "human"
            return await self._api(kind, "POST", f"/api/leads/{c.lead_id}/status", token,
                                   {"status": status, "reason": reason})
        return step

    def _note(self, c: Customer, text: str) -> Step:
        async def step() -> bool:
            if not await self._find(c):
                return False
            return await self._api("note", "POST", f"/api/leads/{c.lead_id}/notes",
                                   self.creds.human_token, {"content": text})
        return step

    async def _find(self, c: Customer) -> bool:
        """The lead's id, from the list API (the lead shows once the replica has it)."""
        if c.lead_id is not None:
            return True
        assert self._session is not None
        try:
            async with self._session.get(
                    f"{self.base}/api/leads", params={"q": "+" + c.wa_id},
                    headers={"Authorization": f"Bearer {self.creds.human_token}"}) as r:
                data = await r.json() if r.status == 200 else {}
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return False
        leads = data.get("leads") or []
        if leads:
            c.lead_id = leads[0]["lead_id"]
        return c.lead_id is not None

    async def _api(self, kind: str, method: str, path: str, token: str,
                   body: dict[str, Any]) -> bool:
        assert self._session is not None
        try:
            async with self._session.request(
                    method, self.base + path, json=body,
                    headers={"Authorization": f"Bearer {token}"}) as r:
                text = await r.text()
                status = r.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._error(kind, repr(exc))
            return True
        if status == 404:
            return False  # not in the replica yet: retried
        if status // 100 != 2:
            self._error(kind, f"{method} {path} answered {status}: {text[:200]}")
        else:
            self.sent[kind] += 1
        return True
