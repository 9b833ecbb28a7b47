"""Merges and identity changes through the processor (issue #18), on plain dict tables: the
records a flush sends to other leads (merge, absorb, claim, forwards) are fed back as a
broker would, in random order and random batches; whatever the order, every message is
counted once, on the survivor."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import orjson
import pytest

from leadstream.domain.identity import lead_id_for, lead_key
from leadstream.domain.merge import MAX_HOPS
from leadstream.domain.model import Command, InboundEvent, MessageInfo
from leadstream.streams.records import encode
from tests.unit.agents.harness import NAMES, NOW, DictWorker

SOURCES = (NAMES.events, NAMES.sarah, NAMES.commands)
P1, P2, BSUID = "+6281311110001", "+6281311110002", "ID.99887766"
K1, K2, KB = lead_key("ws", P1), lead_key("ws", P2), lead_key("ws", BSUID)


def msg(wamid: str, minute: int, phone: str | None = P1, bsuid: str | None = None) -> bytes:
    identity = phone or bsuid
    assert identity
    return encode(InboundEvent(
        event_id=f"e:{wamid}", kind="message", event_type="whatsapp.message.received",
        workspace_id="ws", lead_key=lead_key("ws", identity), identity=identity,
        phone_e164=phone, bsuid=bsuid, occurred_at=NOW + timedelta(minutes=minute),
        received_at=NOW, message=MessageInfo(wamid=wamid, direction="inbound", text="halo",
                                             timestamp=NOW + timedelta(minutes=minute))))


def merge(dup: str, survivor: str, eid: str = "m1") -> bytes:
    return encode(Command(event_id=eid, workspace_id="ws", lead_key=dup,
                          occurred_at=NOW + timedelta(minutes=30), kind="merge",
                          actor_role="human", author="Dewi", actor="Dewi",
                          reason="orang yang sama", target_key=survivor))


def number_change(old: str, new: str) -> bytes:
    return encode(InboundEvent(
        event_id=f"e:change:{new}", kind="identity", event_type="whatsapp.system",
        workspace_id="ws", lead_key=lead_key("ws", old), identity=old, phone_e164=old,
        occurred_at=NOW + timedelta(minutes=40), received_at=NOW, new_phone_e164=new))


class Bus:
    """Delivers source records to one worker in random batches; what the worker sends to a
    source topic comes back as input (the broker); keeps the newest snapshot per lead."""

    def __init__(self, seed: int = 0) -> None:
        self.w = DictWorker()
        self.rnd = random.Random(seed)
        self.pending: list[tuple[str, bytes]] = []
        self.leads: dict[str, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []
        self.dead: list[bytes] = []

    def send(self, *records: bytes, topic: str = "") -> None:
        for r in records:
            t = topic or (NAMES.commands if b'"kind":"merge"' in r else NAMES.events)
            self.pending.append((t, r))

    def drain(self, shuffle: bool = False, redeliver: float = 0.0) -> None:
        while self.pending:
            if shuffle:
                self.rnd.shuffle(self.pending)
            n = self.rnd.randint(1, len(self.pending)) if shuffle else len(self.pending)
            batch, self.pending = self.pending[:n], self.pending[n:]
            if redeliver:
                batch += [r for r in batch if self.rnd.random() < redeliver]
            for topic, _, value in self.w.run(batch):
                if topic in SOURCES:
                    self.pending.append((topic, value))
                elif topic == NAMES.leads:
                    lead = orjson.loads(value)
                    cur = self.leads.get(lead["lead_key"])
                    if cur is None or lead["version"] >= cur["version"]:
                        self.leads[lead["lead_key"]] = lead
                elif topic == NAMES.notes:
                    self.notes.append(orjson.loads(value))
                elif topic == NAMES.dlq:
                    self.dead.append(value)

    def active(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.leads.items() if not v.get("merged_into")}


def test_merge_moves_the_count_and_later_messages_follow_the_survivor() -> None:
    bus = Bus()
    bus.send(*(msg(f"d{i}", i, P2) for i in range(3)), *(msg(f"s{i}", i) for i in range(2)))
    bus.drain()
    bus.send(merge(K2, K1))
    bus.drain()
    assert set(bus.active()) == {K1}
    s, d = bus.leads[K1], bus.leads[K2]
    assert s["message_count"] == 5 and d["merged_into"] == lead_id_for(K1)
    assert d["merged_into_key"] == K1
    (note,) = [n for n in bus.notes if n["lead_key"] == K1]
    assert note["author_type"] == "system" and "oleh Dewi: orang yang sama" in note["content"]
    # a new message from the duplicate's number counts on the survivor
    bus.send(msg("d-new", 50, P2))
    bus.drain()
    assert bus.leads[K1]["message_count"] == 6
    # a redelivery of one the duplicate counted, and of the forwarded one: counted once
    bus.send(msg("d1", 1, P2), msg("d-new", 50, P2))
    bus.drain()
    assert bus.leads[K1]["message_count"] == 6
    # the same merge again (a retry) changes nothing
    bus.send(merge(K2, K1))
    bus.drain()
    assert bus.leads[K1]["message_count"] == 6 and len(bus.notes) == 1


@pytest.mark.parametrize("seed", range(25))
def test_a_merge_racing_messages_for_the_duplicate_loses_and_doubles_nothing(seed: int) -> None:
    """Messages for the duplicate before, during and after the merge, redelivered at random,
    in random order and random batches: the survivor counts every distinct message once."""
    bus = Bus(seed)
    bus.send(*(msg(f"s{i}", i) for i in range(3)), *(msg(f"d{i}", i, P2) for i in range(2)))
    bus.drain(shuffle=True)
    bus.send(merge(K2, K1), *(msg(f"d{i}", 10 + i, P2) for i in range(2, 8)),
             msg("s3", 12))
    bus.drain(shuffle=True, redeliver=0.3)
    bus.send(*(msg(f"d{i}", 20 + i, P2) for i in range(8, 10)), msg("d3", 13, P2))
    bus.drain(shuffle=True, redeliver=0.3)
    assert set(bus.active()) == {K1}
    assert bus.leads[K1]["message_count"] == 4 + 10
    assert not bus.dead


def test_a_lead_first_seen_by_its_business_scoped_id_and_later_by_phone_is_one_lead() -> None:
    bus = Bus()
    bus.send(msg("b1", 0, phone=None, bsuid=BSUID), msg("b2", 1, phone=None, bsuid=BSUID))
    bus.drain()
    assert set(bus.active()) == {KB}
    # now a message that carries both: the phone is the identity, the bsuid is claimed
    bus.send(msg("p1", 2, phone=P1, bsuid=BSUID))
    bus.drain()
    assert set(bus.active()) == {K1}
    assert bus.leads[K1]["message_count"] == 3 and bus.leads[K1]["bsuid"] == BSUID
    # later messages naming only the bsuid land on the same lead
    bus.send(msg("b3", 3, phone=None, bsuid=BSUID))
    bus.drain()
    assert bus.leads[K1]["message_count"] == 4 and set(bus.active()) == {K1}


def test_phone_first_then_a_bsuid_only_message_is_one_lead() -> None:
    bus = Bus()
    bus.send(msg("p1", 0, phone=P1, bsuid=BSUID))
    bus.drain()
    bus.send(msg("b1", 1, phone=None, bsuid=BSUID))
    bus.drain()
    assert set(bus.leads) == {K1} and bus.leads[K1]["message_count"] == 2


def test_after_a_number_change_the_new_number_counts_on_the_same_lead() -> None:
    bus = Bus()
    bus.send(msg("o1", 0), msg("o2", 1))
    bus.drain()
    bus.send(number_change(P1, P2))
    bus.drain()
    assert bus.leads[K1]["phone_e164"] == P2 and bus.leads[K1]["wa_id"] == P2.lstrip("+")
    bus.send(msg("n1", 50, P2), msg("n2", 51, P2))
    bus.drain()
    assert set(bus.active()) == {K1} and bus.leads[K1]["message_count"] == 4


def test_a_number_change_onto_a_known_lead_merges_the_two() -> None:
    bus = Bus()
    bus.send(msg("o1", 0), msg("x1", 1, P2), msg("x2", 2, P2))
    bus.drain()
    assert set(bus.active()) == {K1, K2}
    bus.send(number_change(P1, P2))
    bus.drain()
    assert set(bus.active()) == {K1} and bus.leads[K1]["message_count"] == 3


@pytest.mark.parametrize("seed", range(12))
def test_two_leads_merged_into_each_other_at_once_end_as_one_lead(seed: int) -> None:
    """Two people merge the same two leads in opposite directions at the same moment: in any
    order (both merges before either absorb, or one absorb before the other merge), one lead
    survives with both leads' messages, counted once."""
    bus = Bus(seed)
    bus.send(msg("a", 0), msg("a2", 1), msg("b", 2, P2))
    bus.drain()
    bus.send(merge(K1, K2, "m-a"), merge(K2, K1, "m-b"))
    bus.drain(shuffle=True, redeliver=0.3)
    assert not bus.dead
    (survivor,) = bus.active()  # K1 when both merges come first (the smaller key), else
    other = K2 if survivor == K1 else K1  # the one whose merge came second was a no-op
    assert bus.leads[survivor]["message_count"] == 3
    assert bus.leads[other]["merged_into_key"] == survivor


def test_a_longer_merge_cycle_is_cut_at_the_hop_limit_not_looped() -> None:
    bus = Bus()
    k3 = lead_key("ws", "+6281311110003")
    bus.send(msg("a", 0), msg("b", 1, P2), msg("c", 2, "+6281311110003"))
    bus.drain()
    bus.send(merge(K1, K2, "m-a"), merge(K2, k3, "m-b"), merge(k3, K1, "m-c"))
    bus.drain()
    assert any(b"merge cycle" in d for d in bus.dead)
    assert MAX_HOPS <= 8


def test_crossed_merges_taken_before_either_absorb_keep_the_smaller_key() -> None:
    bus = Bus()
    bus.send(msg("a", 0), msg("a2", 1), msg("b", 2, P2))
    bus.drain()
    bus.send(merge(K2, K1, "m-b"), merge(K1, K2, "m-a"))  # one flush: both marked merged
    bus.drain()
    assert not bus.dead and set(bus.active()) == {K1}
    assert bus.leads[K1]["message_count"] == 3 and bus.leads[K1]["merged_into"] is None
    assert bus.leads[K2]["merged_into_key"] == K1
