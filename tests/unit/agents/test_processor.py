"""LeadProcessor and the flush it fills, on plain dict tables (no broker): de-duplication,
coalescing, a poison record inside a batch, the three source topics interleaved, and a crash
between the changelog and the outputs (issue #15); a record that fails part-way leaves
nothing emitted (issue #14)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from leadstream.domain.identity import lead_key
from leadstream.domain.model import Command, InboundEvent, MessageInfo, SarahFields, SarahUpdate
from leadstream.streams.records import encode
from tests.unit.agents.harness import NAMES, NOW, DictWorker

PHONE = "+6281312345678"
KEY = lead_key("ws", PHONE)


def _key(n: int) -> tuple[str, str]:
    phone = f"+62813{10000000 + n:08d}"
    return phone, lead_key("ws", phone)


def _event(wamid: str, at: datetime, n: int | None = None, *, kind: str = "message",
           status: str = "received") -> bytes:
    phone, key = _key(n) if n is not None else (PHONE, KEY)
    return encode(InboundEvent(
        event_id=f"e:{wamid}:{kind}:{status}", kind=kind,  # type: ignore[arg-type]
        event_type="whatsapp.message.received", workspace_id="ws", lead_key=key,
        identity=phone, phone_e164=phone, occurred_at=at, received_at=datetime.now(UTC),
        message=MessageInfo(wamid=wamid, direction="inbound", text="halo", status=status,
                            timestamp=at)))


def _sarah(eid: str, at: datetime, **fields: Any) -> bytes:
    return encode(SarahUpdate(event_id=eid, workspace_id="ws", lead_key=KEY, identity=PHONE,
                              phone_e164=PHONE, occurred_at=at, chat_phase="listening",
                              extracted=SarahFields(**fields), lead_score=70,
                              lead_temperature="warm"))


def _status(eid: str, at: datetime, to: str) -> bytes:
    return encode(Command(event_id=eid, workspace_id="ws", lead_key=KEY, occurred_at=at,
                          kind="status", actor_role="human", author="ani",
                          status=to))  # type: ignore[arg-type]


def _note(eid: str, at: datetime, text: str) -> bytes:
    return encode(Command(event_id=eid, workspace_id="ws", lead_key=KEY, occurred_at=at,
                          kind="note", actor_role="human", author="ani", content=text))


def _of(out: list[tuple[str, bytes, bytes]], topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for t, _, v in out if t == topic]


def test_a_record_that_fails_part_way_emits_nothing_and_versions_stay_unique() -> None:
    w = DictWorker()
    # the edge refuses such a date; a record from before that limit, or another producer,
    # still reaches the worker: 9999-12-31 23:00 UTC is 10000-01-01 in Jakarta
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    sent = []
    for wamid, at in [("w1", NOW), ("w-far", far), ("w2", NOW + timedelta(minutes=1))]:
        sent += w.run([(NAMES.events, _event(wamid, at))])
    assert w.proc.dead == 1 and w.proc.processed == 2
    versions = [s["version"] for s in _of(sent, NAMES.leads)]
    assert versions == sorted(set(versions)), versions  # never one version twice
    assert _of(sent, NAMES.leads)[-1]["message_count"] == 2
    assert [t for t, _, v in sent if b"w-far" in v and t != NAMES.dlq] == []
    (dl,) = _of(sent, NAMES.dlq)
    assert "apply failed" in dl["reason"]
    assert dl["workspace_id"] == "ws"  # listed on the workspace's own dashboard


def test_one_flush_coalesces_a_lead_to_one_snapshot_and_one_changelog_record() -> None:
    w = DictWorker()
    out = w.run([(NAMES.events, _event(f"w{i}", NOW + timedelta(seconds=i)))
                 for i in range(20)])
    (snap,) = _of(out, NAMES.leads)
    assert snap["message_count"] == 20 and snap["version"] == 20
    assert len(_of(out, NAMES.messages)) == 20  # every message row, once
    assert [t for t, _, _ in w.changelog].count("cl-leads") == 1
    assert [t for t, _, _ in w.changelog].count("cl-daily") == 1  # one lead-day
    assert [t for t, _, _ in w.changelog].count("cl-messages") == 20


def test_redelivered_records_change_nothing_and_reemit_what_they_derived() -> None:
    w = DictWorker()
    first = [(NAMES.events, _event("w1", NOW)), (NAMES.sarah, _sarah("s1", NOW, name="Budi")),
             (NAMES.commands, _status("c1", NOW, "contacted")),
             (NAMES.commands, _note("n1", NOW, "telepon besok"))]
    w.run(first)
    before = orjson.loads(w.leads[KEY.encode()])["lead"]
    again = w.run(first)  # Kafka redelivers the whole batch
    assert orjson.loads(w.leads[KEY.encode()])["lead"] == before
    (snap,) = _of(again, NAMES.leads)
    assert snap["message_count"] == 1 and snap["lead_status"] == "contacted"
    assert snap["name"] == "Budi"
    assert len(_of(again, NAMES.messages)) == 1  # re-emitted, same version
    assert [n["content"] for n in _of(again, NAMES.notes)] == ["telepon besok"]
    assert [h["to_status"] for h in _of(again, NAMES.status_history)] == ["contacted"]


def test_a_crash_after_the_produce_before_the_store_loses_nothing_and_counts_once() -> None:
    """The changelog and outputs reached the broker, the store write did not (a crash, or a
    rebalance that dropped the store): the records come again and are applied once."""
    w = DictWorker()
    recs = [(NAMES.events, _event(f"w{i}", NOW + timedelta(seconds=i))) for i in range(5)]
    w.run(recs, crash=True)
    assert w.leads == {}
    out = w.run(recs)
    (snap,) = _of(out, NAMES.leads)
    assert snap["message_count"] == 5


def test_objects_of_earlier_flushes_stand_only_for_the_bytes_in_the_store() -> None:
    """`flush.Decoded`: a lead read again in a later flush is taken from the object the
    previous flush wrote, not decoded; and a worker that keeps them emits and stores exactly
    what one decoding every read does, across a flush that never became durable (its
    objects were kept, the store kept the older bytes) and the redelivery after it."""
    kept, plain = DictWorker(), DictWorker(cache_size=0)
    s = timedelta(seconds=1)
    flushes = [
        [(NAMES.events, _event("a1", NOW))],
        [(NAMES.commands, _status("s1", NOW + s, "contacted")),
         (NAMES.sarah, _sarah("z1", NOW + 2 * s, name="Budi"))],
        [(NAMES.events, _event("a2", NOW + 3 * s)), (NAMES.commands, _note("n1", NOW + 4 * s,
                                                                           "telepon besok"))],
        [(NAMES.events, _event("a3", NOW + 5 * s))],
        [(NAMES.events, _event("a2", NOW + 3 * s)), (NAMES.commands, _note("n1", NOW + 4 * s,
                                                                           "telepon besok"))],
        [(NAMES.sarah, _sarah("z2", NOW + 6 * s, business_type="kuliner"))],
    ]
    for i, recs in enumerate(flushes):
        crash = i == 2  # the outputs went out, the stores were not written
        assert kept.run(recs, crash=crash) == plain.run(recs, crash=crash), i
        assert (kept.leads, kept.messages, kept.daily) == (plain.leads, plain.messages,
                                                           plain.daily), i
    (lead,) = (orjson.loads(v)["lead"] for v in kept.leads.values())
    assert lead["message_count"] == 3 and lead["name"] == "Budi"
    assert lead["business_type"] == "kuliner" and lead["lead_status"] == "contacted"
    # read from the kept object in flushes 2, 3, 5 and 6, decoded in flush 4 (after the crash)
    assert kept.proc.decoded.leads.hits == 4
    assert plain.proc.decoded.leads.hits == 0


def test_state_ahead_of_its_changelog_is_written_back_when_reprocessed() -> None:
    """The store has the state and the changelog missed it: the records come again, change
    nothing, and the flush writes the state back so the changelog has it."""
    w = DictWorker()
    recs = [(NAMES.events, _event("w1", NOW))]
    w.run(recs)
    w.changelog.clear()
    w.run(recs)
    topics = sorted(t for t, _, _ in w.changelog)
    assert topics == ["cl-daily", "cl-leads", "cl-messages"], topics


def test_a_poison_record_inside_a_batch_is_dead_lettered_and_the_rest_applied() -> None:
    w = DictWorker()
    recs = [(NAMES.events, _event(f"w{i}", NOW + timedelta(seconds=i))) for i in range(6)]
    recs.insert(3, (NAMES.events, b'{"lead_key": "' + KEY.encode() + b'", "kind": 1}'))
    flush = w.proc.begin()
    for offset, (topic, value) in enumerate(recs):
        w.proc.handle(flush, topic, 0, offset, KEY.encode(), value)
    assert flush.offsets == {(NAMES.events, 0): list(range(7))}  # the poison is acked too
    produce, _, _ = w.runner.records(flush)
    out = [(t, k, v) for (t, _), rs in produce.items() for k, v in rs] + flush.out.other
    (snap,) = _of(out, NAMES.leads)
    assert snap["message_count"] == 6
    (dl,) = _of(out, NAMES.dlq)
    assert dl["source_offset"] == 3 and "invalid record" in dl["reason"]


@pytest.mark.parametrize("seed", range(8))
def test_any_interleaving_of_the_three_topics_and_any_batching_ends_the_same(seed: int
                                                                             ) -> None:
    """Events, Sarah and commands of one lead arrive per topic in order, interleaved in any
    way between topics and cut into flushes anywhere: the lead ends the same."""
    rng = random.Random(seed)
    t = [NOW + timedelta(minutes=i) for i in range(12)]
    per_topic = {
        NAMES.events: [_event(f"w{i}", t[i]) for i in range(6)]
        + [_event("w2", t[7], kind="status", status="read")],
        NAMES.sarah: [_sarah("s1", t[1], name="Budi", business_type="warung"),
                      _sarah("s2", t[4], domisili="Bandung", pain_points=["stok"])],
        NAMES.commands: [_status("c1", t[5], "contacted"), _note("n1", t[6], "follow up"),
                         _status("c2", t[8], "converted")],
    }
    ref = DictWorker()
    ref.run([(tp, v) for tp, vs in per_topic.items() for v in vs])

    w = DictWorker()
    queues = {tp: list(vs) for tp, vs in per_topic.items()}
    order = []
    while any(queues.values()):
        tp = rng.choice([k for k, q in queues.items() if q])
        order.append((tp, queues[tp].pop(0)))
    cut = sorted(rng.sample(range(1, len(order)), 3))
    for a, b in zip([0, *cut], [*cut, len(order)], strict=True):
        w.run(order[a:b])

    def lead(worker: DictWorker) -> dict[str, Any]:
        d = orjson.loads(worker.leads[KEY.encode()])["lead"]
        return {k: d[k] for k in ("message_count", "lead_status", "name", "business_type",
                                  "domisili", "pain_points", "lead_score")}

    assert lead(w) == lead(ref)
    assert lead(w)["message_count"] == 6 and lead(w)["lead_status"] == "converted"


def test_many_leads_in_one_flush_each_get_their_snapshot() -> None:
    w = DictWorker()
    recs = [(NAMES.events, _event(f"m{i}", NOW, n=i % 50)) for i in range(200)]
    out = w.run(recs)
    snaps = _of(out, NAMES.leads)
    assert len(snaps) == 50 and {s["message_count"] for s in snaps} == {4}
    assert len(w.leads) == 50


def test_a_flush_begun_while_the_one_before_is_in_flight_reads_its_writes() -> None:
    """The worker fills flush B while A is being produced: A's writes are not in the store
    yet, so B reads them from A (one flush in flight at a time)."""
    w = DictWorker()
    a = w.proc.begin()
    for i in range(3):
        w.proc.handle(a, NAMES.events, 0, i, KEY.encode(),
                      _event(f"w{i}", NOW + timedelta(seconds=i)))
    a.detach()
    b = w.proc.begin(after=a)
    for i in range(3, 5):
        w.proc.handle(b, NAMES.events, 0, i, KEY.encode(),
                      _event(f"w{i}", NOW + timedelta(seconds=i)))
    w.proc.handle(b, NAMES.events, 0, 5, KEY.encode(), _event("w1", NOW))  # a redelivery
    assert w.leads == {}  # nothing stored yet
    produce, _, _ = w.runner.records(b)
    (snap,) = [orjson.loads(v) for (t, _), rs in produce.items() if t == NAMES.leads
               for _, v in rs]
    assert snap["message_count"] == 5 and snap["version"] == 5
    (day,) = [orjson.loads(v) for (t, _), rs in produce.items() if t == "cl-daily"
              for _, v in rs]
    assert day["inbound_count"] == 5


def test_receipts_of_messages_never_seen_make_no_lead_until_a_message_comes() -> None:
    """Issue #24: delivery receipts for unknown messages made placeholder leads that the list,
    the counts and the digest showed as new leads. Now nothing is out until the lead has
    activity; its first message brings the lead and the message, with the receipt's status."""
    w = DictWorker()
    events = NAMES.events
    out = w.run([(events, _event("w9", NOW, kind="status", status="delivered")),
                 (events, _event("w9", NOW + timedelta(seconds=5), kind="status", status="read"))])
    assert _of(out, NAMES.leads) == [] and _of(out, NAMES.messages) == []
    # a redelivered receipt re-emits nothing either
    out = w.run([(events, _event("w9", NOW, kind="status", status="delivered"))])
    assert _of(out, NAMES.leads) == [] and _of(out, NAMES.messages) == []
    out = w.run([(events, _event("w9", NOW - timedelta(seconds=30)))])
    (lead,) = _of(out, NAMES.leads)
    (message,) = _of(out, NAMES.messages)
    assert lead["message_count"] == 1 and message["status"] == "read"


def test_a_redelivered_task_command_or_closing_move_reemits_the_tasks() -> None:
    """Issue #29: a task and the move that closed it are outputs of their commands; a
    redelivery (or a crash before the outputs were out) sends the tasks again as the state
    has them, so the replica's `lead_tasks` cannot miss a version."""
    w = DictWorker()
    now = NOW
    task = encode(Command(event_id="t1", workspace_id="ws", lead_key=KEY, occurred_at=now,
                          kind="task", actor_role="human", author="ani", task_id="T1",
                          content="telepon"))
    first = [(NAMES.commands, _note("n1", now, "halo")), (NAMES.commands, task)]
    out = w.run(first)
    assert [(t["task_id"], t["version"]) for t in _of(out, NAMES.tasks)] == [("T1", 1)]
    again = w.run([(NAMES.commands, task)])
    assert [(t["task_id"], t["version"]) for t in _of(again, NAMES.tasks)] == [("T1", 1)]
    close = (NAMES.commands, _status("s1", now + timedelta(minutes=5), "converted"))
    closed = w.run([close], crash=True)  # the store misses it; the outputs went out
    assert [(t["done_by"], t["version"]) for t in _of(closed, NAMES.tasks)] == [("human", 2)]
    redelivered = w.run([close])  # applied again from the old store: the same version
    assert [(t["done_by"], t["version"]) for t in _of(redelivered, NAMES.tasks)] == [
        ("human", 2)]
    lost = w.run([close])  # applied already: re-emitted from the state
    assert [(t["done_by"], t["version"]) for t in _of(lost, NAMES.tasks)] == [("human", 2)]
