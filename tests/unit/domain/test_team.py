"""The team's rules on a lead (domain.team): tag spelling and bounds, tag changes, and the
timeline lines of an owner or tag change (issue #29)."""

from __future__ import annotations

import itertools

import pytest

from leadstream.domain.team import (
    MAX_TAG,
    MAX_TAGS,
    apply_tags,
    assignment_note,
    normalize_tag,
    tag_note,
)


@pytest.mark.parametrize(("raw", "tag"), [
    ("VIP", "vip"), ("  minta   katalog ", "minta katalog"), ("#Reseller", "reseller"),
    ("a\x00b", "ab"), ("x" * MAX_TAG, "x" * MAX_TAG), ("Ñandú", "ñandú"), ("# hot", "hot"),
])
def test_one_spelling_per_label(raw: str, tag: str) -> None:
    assert normalize_tag(raw) == tag
    assert normalize_tag(tag) == tag  # idempotent


@pytest.mark.parametrize("raw", ["", "   ", "#", "\x00", "x" * (MAX_TAG + 1)])
def test_empty_or_long_labels_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        normalize_tag(raw)


def test_adding_and_removing() -> None:
    assert apply_tags([], ["vip"], []) == ["vip"]
    assert apply_tags(["vip", "cold"], ["hot"], ["cold"]) == ["vip", "hot"]
    assert apply_tags(["vip", "hot"], ["vip"], []) == ["vip", "hot"]  # keeps its place
    assert apply_tags(["vip"], [], ["unknown"]) == ["vip"]
    assert apply_tags(["vip"], ["vip"], ["vip"]) == ["vip"]  # added and removed: added
    assert apply_tags(["a", "b"], [], ["a", "b"]) == []


def test_a_lead_keeps_its_newest_tags() -> None:
    current = [f"t{i}" for i in range(MAX_TAGS)]
    after = apply_tags(current, ["new1", "new2"], [])
    assert len(after) == MAX_TAGS and after[-2:] == ["new1", "new2"] and "t0" not in after


def test_every_small_case_stays_bounded_unique_and_ordered() -> None:
    labels = ["a", "b", "c", "d"]
    for n in range(4):
        for cur in itertools.permutations(labels, n):
            for add in itertools.combinations(labels, 2):
                for rem in itertools.combinations(labels, 1):
                    out = apply_tags(list(cur), add, rem, limit=3)
                    assert len(out) == len(set(out)) <= 3
                    assert all(t in out for t in add if len(set(cur) | set(add)) <= 3)
                    kept = [t for t in cur if t in out]
                    assert kept == [t for t in out if t in cur]  # order of the old kept


def test_timeline_lines() -> None:
    assert tag_note(["vip"], ["vip"]) is None
    assert tag_note(["cold"], ["vip", "hot"]) == "Label: +vip +hot \u2212cold"
    assert assignment_note("Dewi", "Dewi") is None
    assert assignment_note(None, "Dewi") == "Ditugaskan ke Dewi / assigned to Dewi"
    assert assignment_note("Budi", "Dewi") == (
        "Dialihkan dari Budi ke Dewi / reassigned from Budi to Dewi")
    assert assignment_note("Budi", None) == "Tidak lagi ditugaskan ke Budi / unassigned from Budi"


# ----------------------------------------------------------------------------- on a lead

def test_assigning_records_who_on_the_timeline_and_is_idempotent() -> None:
    from leadstream.domain.rules import apply_command
    from tests.unit.domain.builders import cmd

    lead = apply_command(None, cmd(0, "note", content="hi")).lead
    a = apply_command(lead, cmd(1, "assign", author="Rina", owner="Dewi"))
    assert a.lead.owner == "Dewi" and a.lead_changed
    [note] = a.notes
    assert (note.author, note.author_type, note.note_id) == ("Rina", "human", "c1assignhuman")
    assert note.content == "Ditugaskan ke Dewi / assigned to Dewi"
    again = apply_command(a.lead, cmd(1, "assign", author="Rina", owner="Dewi"))
    assert again.notes == [] and not again.lead_changed  # the same owner: nothing to say
    gone = apply_command(a.lead, cmd(2, "assign", "brain-bot", owner=None))
    assert gone.lead.owner is None and gone.notes[0].author_type == "bot"


def test_tags_are_spelled_once_and_each_change_is_on_the_timeline() -> None:
    from leadstream.domain.rules import apply_command
    from tests.unit.domain.builders import cmd

    lead = apply_command(None, cmd(0, "note", content="hi")).lead
    t = apply_command(lead, cmd(1, "tags", "sarah-bot", tags_add=["  VIP ", "#Reseller"]))
    assert t.lead.tags == ["vip", "reseller"] and t.notes[0].author_type == "bot"
    assert t.notes[0].content == "Label: +vip +reseller"
    t2 = apply_command(t.lead, cmd(2, "tags", tags_add=["vip"], tags_remove=["RESELLER"]))
    assert t2.lead.tags == ["vip"] and t2.notes[0].content == "Label: \u2212reseller"
    same = apply_command(t2.lead, cmd(3, "tags", tags_add=["Vip"]))
    assert same.notes == [] and not same.lead_changed


def test_a_bad_label_on_the_log_fails_the_command_not_the_lead() -> None:
    from leadstream.domain.rules import apply_command
    from tests.unit.domain.builders import cmd

    with pytest.raises(ValueError, match="tag"):  # the worker dead-letters it
        apply_command(None, cmd(0, "tags", tags_add=["x" * (MAX_TAG + 5)]))


def test_a_merge_keeps_the_survivors_owner_and_both_leads_labels() -> None:
    from leadstream.domain.merge import absorb, absorb_command
    from leadstream.domain.model import Command
    from leadstream.domain.rules import apply_command
    from tests.unit.domain.builders import KEY, at, cmd

    survivor = apply_command(None, cmd(0, "tags", tags_add=["vip"])).lead
    dup = apply_command(None, cmd(0, "assign", owner="Budi")).lead.model_copy(
        update={"lead_key": "ws1:+6281300000001"})
    dup = apply_command(dup, cmd(1, "tags", tags_add=["cold", "vip"])).lead
    merge = Command(event_id="m1", workspace_id="ws1", lead_key=dup.lead_key,
                    occurred_at=at(9), kind="merge", actor_role="human", author="Dewi",
                    target_key=KEY)
    merged = absorb(survivor, absorb_command(merge, dup, KEY)).lead
    assert merged.owner == "Budi" and merged.tags == ["vip", "cold"]  # filled, carried
    owned = apply_command(survivor, cmd(2, "assign", owner="Dewi")).lead
    assert absorb(owned, absorb_command(merge, dup, KEY)).lead.owner == "Dewi"



# ----------------------------------------------------------------------------- auto-assignment

def test_round_robin_is_fair_and_continues_across_runs() -> None:
    from leadstream.domain.team import round_robin

    assert round_robin([], 0, 3) == ([], 0)  # nobody to give them to: nothing moves
    assert round_robin(["Dewi"], 5, 0) == ([], 5)
    owners, turn = round_robin(["Dewi", "Budi", "Ani"], 0, 4)
    assert owners == ["Ani", "Budi", "Dewi", "Ani"] and turn == 4  # in name order
    more, turn = round_robin(["Ani", "Budi", "Dewi"], turn, 2)
    assert more == ["Budi", "Dewi"] and turn == 6
    assert round_robin(["Budi", "Budi", "Ani"], 0, 3)[0] == ["Ani", "Budi", "Ani"]  # once each
    # any split of the same leads over runs gives the same owners, each person within one
    people = ["a", "b", "c", "d"]
    for n in range(1, 30):
        whole, _ = round_robin(people, 7, n)
        counts = [whole.count(p) for p in people]
        assert max(counts) - min(counts) <= 1
        for cut in range(n + 1):
            first, t = round_robin(people, 7, cut)
            rest, _ = round_robin(people, t, n - cut)
            assert first + rest == whole
