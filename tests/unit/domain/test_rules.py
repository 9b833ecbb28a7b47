"""The lead rules, table-driven: status policy, Sarah merges, names, messages, reordering."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from leadstream.domain.model import (
    LEAD_STATUSES,
    Command,
    InboundEvent,
    LeadState,
    MessageState,
    SarahFields,
    SarahUpdate,
)
from leadstream.domain.rules import (
    PHASE_STATUS,
    apply_command,
    apply_inbound,
    apply_sarah,
    may_change_status,
    merge_pain_points,
    phase_to_status,
)
from leadstream.domain.team import MAX_TAG, MAX_TAGS
from tests.unit.domain.builders import KEY, at, cmd, msg_event, sarah

ROLES = ("human", "brain-bot", "sarah-bot")


def run(inputs: Sequence[object]) -> tuple[LeadState | None, dict[str, MessageState], list, list]:
    lead: LeadState | None = None
    messages: dict[str, MessageState] = {}
    history, notes = [], []
    for x in inputs:
        if isinstance(x, InboundEvent):
            assert x.message is not None
            a = apply_inbound(lead, messages.get(x.message.wamid), x)
            if a.message is not None:
                messages[x.message.wamid] = a.message
        elif isinstance(x, SarahUpdate):
            a = apply_sarah(lead, x)
        else:
            assert isinstance(x, Command)
            a = apply_command(lead, x)
        lead = a.lead
        history += a.status_changes
        notes += a.notes
    return lead, messages, history, notes


# ----------------------------------------------------------------------------- phases

@pytest.mark.parametrize("phase,status", sorted(PHASE_STATUS.items()))
def test_every_listed_phase_maps(phase: str, status: str) -> None:
    assert phase_to_status(phase) == status
    assert phase_to_status(phase.upper()) == status


@pytest.mark.parametrize("phase,status", [
    ("A", "new"), ("B", "new"), ("C", "qualified"), ("D", "contacted"), ("phase_c", "qualified"),
    ("B (phase 1)", "new"), ("C (phase 2)", "qualified"), ("D (phase 3)", "contacted"),
    ("validate-pain-points", "qualified"), ("Close Attempt", "contacted"),
    (" completed ", "converted"),
])
def test_phase_letters_and_spellings(phase: str, status: str) -> None:
    assert phase_to_status(phase) == status


@pytest.mark.parametrize("phase", [None, "", "unknown", "E", "phase_z", "chit_chat", "aa"])
def test_unknown_phase_moves_nothing(phase: str | None) -> None:
    assert phase_to_status(phase) is None


def test_unknown_phase_is_kept_but_status_stays() -> None:
    lead, _, history, _ = run([sarah(1, "listening"), sarah(2, "mystery_phase")])
    assert lead is not None and lead.chat_phase == "mystery_phase"
    assert lead.lead_status == "qualified" and len(history) == 1


# ----------------------------------------------------------------------------- status policy

@pytest.mark.parametrize("actor,last,allowed", [
    ("human", None, True), ("human", "human", True), ("human", "brain-bot", True),
    ("human", "sarah-bot", True), ("brain-bot", None, True), ("brain-bot", "human", True),
    ("brain-bot", "brain-bot", True), ("brain-bot", "sarah-bot", True),
    ("sarah-bot", None, True), ("sarah-bot", "sarah-bot", True),
    ("sarah-bot", "human", False), ("sarah-bot", "brain-bot", False),
])
def test_who_may_change_status(actor: str, last: str | None, allowed: bool) -> None:
    assert may_change_status(actor, last) is allowed  # type: ignore[arg-type]


def _oracle(moves: list[tuple[str, str]]) -> tuple[str, int]:
    status, owner, changes = "new", None, 0
    for role, to in moves:
        if role == "sarah-bot" and owner not in (None, "sarah-bot"):
            continue
        if to == status:
            continue
        status, owner, changes = to, role, changes + 1
    return status, changes


MOVES = [(r, s) for r in ROLES for s in LEAD_STATUSES]
SEQUENCES = list(itertools.product(MOVES, repeat=2)) + [
    tuple(random.Random(i).choices(MOVES, k=5)) for i in range(200)
]


@pytest.mark.parametrize("moves", SEQUENCES, ids=lambda m: "-".join(f"{r[0]}{s[:3]}" for r, s in m))
def test_status_sequences_follow_the_policy(moves: tuple[tuple[str, str], ...]) -> None:
    """Human/Brain/Sarah races: any move allowed, Sarah never overrides a human or Brain."""
    phase_for = {"new": "greeting", "qualified": "qualifying", "contacted": "handoff",
                 "converted": "completed", "archived": None}
    inputs: list[object] = [msg_event("w0", 0)]
    expected_moves: list[tuple[str, str]] = []
    for i, (role, status) in enumerate(moves, start=1):
        if role == "sarah-bot":
            phase = phase_for[status]
            inputs.append(sarah(i, phase))
            if phase is not None:
                expected_moves.append((role, status))
        else:
            inputs.append(cmd(i, "status", role, status=status, reason="r"))
            expected_moves.append((role, status))
    lead, _, history, _ = run(inputs)
    want_status, want_changes = _oracle(expected_moves)
    assert lead is not None
    assert lead.lead_status == want_status
    assert len(history) == want_changes
    for h in history:
        assert h.from_status != h.to_status
    if history:
        assert lead.status_updated_by_role == history[-1].changed_by_role
        assert lead.status_updated_at == history[-1].changed_at


def test_status_change_record_fields() -> None:
    _, _, history, _ = run([msg_event("w0", 0),
                            cmd(5, "status", "brain-bot", status="contacted", reason="replied")])
    (h,) = history
    assert (h.from_status, h.to_status, h.changed_by, h.reason) == (
        "new", "contacted", "brain-bot", "replied")
    assert h.changed_at == at(5) and h.lead_id and h.event_id


def test_a_persons_move_names_the_person_a_shared_tokens_its_role() -> None:
    lead, _, history, _ = run([msg_event("w0", 0),
                               cmd(5, "status", "human", status="contacted", actor="Dewi")])
    assert lead is not None and (lead.status_updated_by, lead.status_updated_by_role) == (
        "Dewi", "human")
    assert (history[0].actor, history[0].changed_by) == ("Dewi", "human")
    lead, _, _, _ = run([msg_event("w0", 0), cmd(5, "status", "human", status="contacted")])
    assert lead is not None and lead.status_updated_by == "human"  # no person: the role
    lead, _, _, _ = run([msg_event("w0", 0), cmd(5, "status", "brain-bot", status="qualified")])
    assert lead is not None and lead.status_updated_by == "brain-bot"


@pytest.mark.parametrize(("fields", "text"), [
    ({"edit_fields": ["name"], "name": "Bu Rina"}, "Nama diubah menjadi “Bu Rina”."),
    ({"edit_fields": ["name"], "name": None},
     "Nama yang diketik dihapus (kembali ke nama dari Sarah/WhatsApp)."),
    ({"edit_fields": ["phone"], "phone": "+6281399998888"},
     "Telepon diubah menjadi +6281399998888."),
    ({"edit_fields": ["name", "phone"], "name": "Rina", "phone": None},
     "Nama diubah menjadi “Rina”; Telepon yang diketik dihapus."),
    ({"edit_fields": []}, None),
])
def test_an_edit_leaves_a_note_with_who_and_when(fields: dict[str, object],
                                                 text: str | None) -> None:
    """Name and phone edits are on the timeline like status moves: the note's author and
    time are who and when; the text comes from the command alone (a re-emit repeats it)."""
    c = cmd(5, "edit", "human", author="Dewi", **fields)
    lead, _, _, notes = run([msg_event("w0", 0), c])
    if text is None:
        assert notes == []
        return
    (n,) = notes
    assert (n.author, n.author_type, n.content, n.created_at) == ("Dewi", "human", text, at(5))
    assert apply_command(lead, c).notes[0] == n  # the same note again when re-emitted


def test_no_op_status_is_not_a_change_and_keeps_ownership() -> None:
    lead, _, history, _ = run([sarah(1, "qualifying"), cmd(2, "status", "human", status="qualified"),
                               sarah(3, "handoff")])
    assert lead is not None
    assert [h.to_status for h in history] == ["qualified", "contacted"]
    assert lead.status_updated_by_role == "sarah-bot"


# ----------------------------------------------------------------------------- Sarah merges

def test_phase_two_never_erases_phase_one_fields() -> None:
    lead, _, _, _ = run([
        sarah(1, "B", name="Budi", domisili="Bandung", business_type="warung",
              pain_points=["stok selisih"]),
        sarah(2, "C", business_duration="3 tahun", pain_points=["Stok  Selisih", "laporan manual"],
              score=70, temperature="warm"),
        sarah(3, "C", name=None, domisili=None, pain_points=None),
    ])
    assert lead is not None
    assert (lead.sarah_name, lead.domisili, lead.business_type, lead.business_duration) == (
        "Budi", "Bandung", "warung", "3 tahun")
    assert lead.pain_points == ["stok selisih", "laporan manual"]
    assert (lead.lead_score, lead.lead_temperature, lead.lead_status) == (70, "warm", "qualified")


@pytest.mark.parametrize("existing,new,expected", [
    ([], None, []),
    ([], ["a"], ["a"]),
    (["a"], ["A", " a ", "b"], ["a", "b"]),
    (["Stok Selisih"], ["stok   selisih"], ["Stok Selisih"]),
    (["x"], ["", "  ", "y"], ["x", "y"]),
    ([], ["b", "a", "B"], ["b", "a"]),
])
def test_pain_points_accumulate_without_duplicates(existing: list[str], new: list[str] | None,
                                                   expected: list[str]) -> None:
    assert merge_pain_points(existing, new) == expected


def test_sarah_for_an_unknown_phone_creates_the_lead() -> None:
    a = apply_sarah(None, sarah(1, "greeting", name="Siti"))
    assert a.lead_changed and a.lead.name == "Siti" and a.lead.message_count == 0
    assert a.lead.lead_status == "new" and a.lead.phone_e164 == "+6281312345678"


# ----------------------------------------------------------------------------- names

@pytest.mark.parametrize("steps,expected", [
    (["kapso:Budi WA"], "Budi WA"),
    (["kapso:Budi WA", "sarah:Budi Santoso"], "Budi Santoso"),
    (["sarah:Budi Santoso", "kapso:Budi WA"], "Budi Santoso"),
    (["kapso:A", "human:Pak Budi", "sarah:Budi S", "kapso:B"], "Pak Budi"),
    (["human:Pak Budi", "human:"], None),
    (["kapso:A", "human:Pak Budi", "human:"], "A"),
    (["kapso:A", "sarah:S", "human:H", "human:"], "S"),
])
def test_display_name_precedence(steps: list[str], expected: str | None) -> None:
    inputs: list[object] = []
    for i, step in enumerate(steps):
        who, _, value = step.partition(":")
        if who == "kapso":
            inputs.append(msg_event(f"w{i}", i, name=value))
        elif who == "sarah":
            inputs.append(sarah(i, None, name=value))
        else:
            inputs.append(cmd(i, "edit", "human", edit_fields=["name"], name=value or None))
    lead, _, _, _ = run(inputs)
    assert lead is not None and lead.name == expected


def test_kapso_name_follows_event_time_not_arrival() -> None:
    lead, _, _, _ = run([msg_event("w2", 10, name="New"), msg_event("w1", 5, name="Old")])
    assert lead is not None and lead.kapso_name == "New"


# ----------------------------------------------------------------------------- messages

def test_redelivered_message_counts_once_and_changes_nothing() -> None:
    ev = msg_event("w1", 1)
    a1 = apply_inbound(None, None, ev)
    a2 = apply_inbound(a1.lead, a1.message, ev)
    assert a1.lead.message_count == 1
    assert not a2.lead_changed and not a2.message_changed
    assert a2.lead.version == a1.lead.version


OUTBOUND = [
    msg_event("o1", 1, direction="outbound", status="sent", text="Halo, ada yang bisa dibantu?"),
    msg_event("o1", 2, kind="status", direction="outbound", status="delivered", text=None),
    msg_event("o1", 3, kind="status", direction="outbound", status="read", text=None),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_statuses_in_any_order_end_in_the_same_row(order: tuple[int, ...]) -> None:
    lead, messages, _, _ = run([OUTBOUND[i] for i in order])
    m = messages["o1"]
    assert (m.status, m.text, m.direction, m.sent_at) == (
        "read", "Halo, ada yang bisa dibantu?", "outbound", at(1))
    assert lead is not None and lead.message_count == 1 and lead.last_outbound_at == at(1)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_failed_is_terminal_and_keeps_its_error(order: tuple[int, ...]) -> None:
    failed = msg_event("o1", 4, kind="status", direction="outbound", status="failed", text=None)
    failed.message.error = "131026 undeliverable"  # type: ignore[union-attr]
    events = [OUTBOUND[0], OUTBOUND[1], failed]
    _, messages, _, _ = run([events[i] for i in order])
    assert messages["o1"].status == "failed"
    assert messages["o1"].error == "131026 undeliverable"


MIXED = [
    msg_event("i1", 1, name="Budi"),
    msg_event("o1", 2, direction="outbound", origin="cloud_api"),
    msg_event("o1", 3, kind="status", direction="outbound", status="delivered", text=None),
    msg_event("i2", 4, conv="c2"),
    msg_event("o2", 5, direction="outbound", origin="business_app"),
    msg_event("o2", 6, kind="status", direction="outbound", status="read", text=None),
    msg_event("i1", 1, name="Budi"),  # a redelivery
]


def _comparable(lead: LeadState) -> dict[str, object]:
    """What the replica shows (plus which wamids were counted, as a set)."""
    d = lead.model_dump(exclude={"version", "recent_counted"})
    d["counted"] = set(lead.recent_counted)
    return d


@pytest.mark.parametrize("seed", range(120))
def test_any_reordering_within_a_lead_gives_the_same_rows(seed: int) -> None:
    base_lead, base_msgs, _, _ = run(MIXED)
    shuffled = MIXED[:]
    random.Random(seed).shuffle(shuffled)
    lead, msgs, _, _ = run(shuffled)
    assert base_lead is not None and lead is not None
    assert _comparable(lead) == _comparable(base_lead)
    assert {k: m.model_dump(exclude={"version", "counted_in"}) for k, m in msgs.items()} == {
        k: m.model_dump(exclude={"version", "counted_in"}) for k, m in base_msgs.items()}


def test_lead_timestamps() -> None:
    lead, _, _, _ = run(MIXED)
    assert lead is not None
    assert lead.message_count == 4
    assert lead.created_at == at(1)
    assert lead.last_message_at == at(5) and lead.last_inbound_at == at(4)
    assert lead.last_outbound_at == at(5)
    assert lead.last_contact_at == at(5)  # only the business_app message is a human contact
    assert lead.last_activity_at == at(5)
    assert lead.kapso_conversation_id == "c1"  # the newest event (minute 6) is in c1


def test_feeding_the_same_stream_twice_changes_nothing() -> None:
    once = [*MIXED, sarah(7, "C", name="Budi S")]
    lead1, msgs1, hist1, _ = run(once)
    lead2, msgs2, hist2, _ = run([*once, *once])
    assert lead1 == lead2 and msgs1 == msgs2
    assert len(hist1) == len(hist2) == 1


# ----------------------------------------------------------------------------- commands

@pytest.mark.parametrize("role,author_type", [("human", "human"), ("brain-bot", "bot"),
                                              ("sarah-bot", "bot")])
def test_notes_are_appended_with_author_type(role: str, author_type: str) -> None:
    lead, _, _, notes = run([msg_event("w1", 1), cmd(2, "note", role, content=" Follow up ",
                                                     author="Ani")])
    (n,) = notes
    assert (n.author, n.author_type, n.content, n.created_at) == ("Ani", author_type,
                                                                  "Follow up", at(2))
    assert lead is not None and lead.last_activity_at == at(2)


def test_blank_note_is_ignored() -> None:
    _, _, _, notes = run([msg_event("w1", 1), cmd(2, "note", content="   ")])
    assert notes == []


def test_phone_edit_keeps_identity() -> None:
    lead, _, _, _ = run([msg_event("w1", 1),
                         cmd(2, "edit", edit_fields=["phone"], phone="+6285712345678")])
    assert lead is not None
    assert lead.contact_phone == "+6285712345678" and lead.phone_e164 == "+6281312345678"
    assert lead.lead_key == KEY


def test_versions_increase_only_on_change() -> None:
    a = apply_inbound(None, None, msg_event("w1", 1))
    b = apply_command(a.lead, cmd(2, "status", status="new"))
    c = apply_command(b.lead, cmd(3, "status", status="qualified"))
    assert (a.lead.version, b.lead.version, c.lead.version) == (1, 1, 2)
    assert not b.lead_changed and c.lead_changed


# ----------------------------------------------------------------------------- crash consistency

def test_lost_lead_record_after_a_crash_counts_the_message_again() -> None:
    """The message record survived, the lead record with its count did not."""
    a1 = apply_inbound(None, None, msg_event("w1", 1))
    a2 = apply_inbound(a1.lead, None, msg_event("w2", 2))
    # crash: message w2 stored, lead still at a1 (its w2 update lost); w2 is reprocessed
    assert a2.message is not None
    again = apply_inbound(a1.lead, a2.message, msg_event("w2", 2))
    assert again.lead.message_count == 2 == a2.lead.message_count


def test_lost_message_record_after_a_crash_does_not_count_twice() -> None:
    """The lead record (with the count) survived, the message record did not."""
    a1 = apply_inbound(None, None, msg_event("w1", 1))
    again = apply_inbound(a1.lead, None, msg_event("w1", 1))
    assert again.lead.message_count == 1
    assert again.message is not None and again.message.seen


def test_old_redelivery_beyond_the_recent_ring_is_not_counted() -> None:
    lead, msgs, _, _ = run([msg_event(f"w{i}", i) for i in range(40)])
    assert lead is not None and lead.message_count == 40
    a = apply_inbound(lead, msgs["w0"], msg_event("w0", 0))
    assert a.lead.message_count == 40 and not a.lead_changed


def test_all_of_sarahs_fields_are_kept_and_unknown_ones_go_to_sarah_extra() -> None:
    """Issue #17: story, language, interest_motivation, closing_technique_used and
    objection_raised have columns; anything else Sarah sends is kept, never dropped."""
    first = SarahFields.model_validate({
        "story": "Buka toko kue sejak 2019", "language": "id",
        "interest_motivation": "stok sering selisih", "closing_technique_used": "trial gratis",
        "objection_raised": "harga", "budget": "2jt", "channels": ["wa", "ig"]})
    a = apply_sarah(None, sarah(0, **first.model_dump(exclude={"sarah_extra"}),
                                sarah_extra=first.sarah_extra)).lead
    assert (a.story, a.language, a.interest_motivation, a.closing_technique_used,
            a.objection_raised) == ("Buka toko kue sejak 2019", "id", "stok sering selisih",
                                    "trial gratis", "harga")
    assert a.sarah_extra == {"budget": "2jt", "channels": ["wa", "ig"]}
    # a later extraction: null keeps, a new value replaces, a new key is added
    b = apply_sarah(a, sarah(1, objection_raised=None, language="en",
                             sarah_extra={"budget": None, "team_size": 4})).lead
    assert b.objection_raised == "harga" and b.language == "en"
    assert b.sarah_extra == {"budget": "2jt", "channels": ["wa", "ig"], "team_size": 4}
    assert a.sarah_extra == {"budget": "2jt", "channels": ["wa", "ig"]}  # the input unchanged


@pytest.mark.parametrize(("extra", "problem"), [
    ({f"k{i}": i for i in range(51)}, "at most 50"),
    ({"k" * 65: 1}, "1 to 64"),
    ({"blob": "x" * 5000}, "over 4000 bytes"),
])
def test_sarah_extra_is_bounded(extra: dict[str, object], problem: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=problem):
        SarahFields.model_validate(extra)


def test_sarah_extra_strips_nul_at_every_depth() -> None:
    f = SarahFields.model_validate({"notes": {"a\x00": ["x\x00y"]}})
    assert f.sarah_extra == {"notes": {"a": ["xy"]}}


@pytest.mark.parametrize("value", [2**70, {"a": [1, -(2**65)]}, "\ud800", {"\udc00": 1}])
def test_sarah_extra_that_json_cannot_hold_is_refused_not_crashed(value: object) -> None:
    """Found by the API fuzz: a 70-bit integer made the server answer 500."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="cannot be stored as JSON"):
        SarahFields.model_validate({"extra_field": value})


# ----------------------------------------------------------------------------- bounds (#24)

#: what one lead's record may weigh at most, whatever is sent: well under the broker's
#: default `max.message.bytes` (1,048,588), so no lead snapshot or changelog value is ever
#: refused as too large
LEAD_BYTES_BOUND = 600_000


def _worst_update(i: int) -> SarahUpdate:
    """An update at every bound: 50 new pain points and 50 new extra fields of the largest
    size, in four-byte characters where text is counted in characters."""
    wide = "\U0001F600"
    big = wide * 480
    return sarah(i, "B", name=wide * 250, business_type=big, domisili=big,
                 business_duration=big, priority=big, urgency_level=big, next_step=big,
                 story=wide * 9_900, interest_motivation=big, closing_technique_used=big,
                 objection_raised=big,
                 pain_points=[f"{i}.{j} " + big for j in range(50)],
                 sarah_extra={f"k{i}.{j}": "x" * 3_990 for j in range(50)})


def test_a_lead_stays_within_its_bound_however_much_is_sent() -> None:
    from leadstream.domain.merge import absorb, absorb_command
    from leadstream.streams.records import encode

    lead = None
    for i in range(40):
        lead = apply_sarah(lead, _worst_update(i)).lead
    assert lead is not None
    assert len(lead.pain_points) == 50 and lead.pain_points[-1].startswith("39.49 ")
    assert len(lead.sarah_extra) == 50 and list(lead.sarah_extra)[-1] == "k39.49"
    # and the team's: every label it may keep, each as long as it may be, and an owner
    for i in range(10):
        lead = apply_command(lead, cmd(100 + i, "tags", tags_add=[
            f"{i}-{j}-" + "\u20ac" * (MAX_TAG - 6) for j in range(MAX_TAGS)])).lead
    lead = apply_command(lead, cmd(200, "assign", owner="\u20ac" * 256)).lead
    assert len(lead.tags) == MAX_TAGS
    assert len(encode(lead)) < LEAD_BYTES_BOUND
    # a merge of two such leads is bounded by the same rules
    other = None
    for i in range(40, 50):
        other = apply_sarah(other, _worst_update(i)).lead
    assert other is not None
    merge = Command(event_id="m1", workspace_id="ws1", lead_key="ws1:+6281300000001",
                    occurred_at=at(99), kind="merge", actor_role="human", author="Dewi",
                    target_key=KEY)
    merged = absorb(lead, absorb_command(merge, other, KEY)).lead
    assert len(merged.pain_points) == 50 and len(merged.sarah_extra) == 50
    assert len(encode(merged)) < LEAD_BYTES_BOUND


def test_extra_fields_keep_the_most_recently_set() -> None:
    from leadstream.domain.rules import merge_extra

    held = {f"k{i}": i for i in range(50)}
    out = merge_extra(held, {"k0": "again", "new": 1, "k5": None})
    assert len(out) == 50 and list(out)[-2:] == ["k0", "new"]
    assert "k1" not in out and out["k5"] == 5  # the oldest made room; null keeps a value
