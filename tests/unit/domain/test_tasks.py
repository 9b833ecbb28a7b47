"""Follow-up tasks (domain.tasks, and the command rule applying them; issue #29): making one,
done and undone with who and when, the bounds, closing on converted/archived, a merge moving
them, and what "overdue" and "today" mean on a fixed clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from leadstream.domain.merge import absorb, absorb_command
from leadstream.domain.model import Command, Task
from leadstream.domain.rules import apply_command, apply_sarah
from leadstream.domain.tasks import (
    MAX_DONE_KEPT,
    MAX_OPEN_TASKS,
    add_task,
    close_open,
    due_before,
    is_overdue,
    mark,
    merge_tasks,
    open_tasks,
    rehome,
    task_note,
)
from tests.unit.domain.builders import KEY, at, cmd, sarah

JKT = "Asia/Jakarta"


def task(i: int, *, due: datetime | None = None, done: datetime | None = None) -> Task:
    return Task(task_id=f"t{i}", lead_id="L", lead_key=KEY, workspace_id="ws1", text=f"call {i}",
                due_at=due, created_by="Dewi", created_at=at(i), done_at=done,
                done_by="Dewi" if done else None)


# ----------------------------------------------------------------------------- pure rules

def test_adding_is_once_per_id_and_bounded() -> None:
    one = add_task([], task(1))
    assert one is not None and [t.task_id for t in one] == ["t1"]
    assert add_task(one, task(1)) is None  # the same command again
    full = [task(i) for i in range(MAX_OPEN_TASKS)]
    assert add_task(full, task(999)) is None
    # done ones do not count against the bound
    half_done = [task(i, done=at(i)) if i % 2 else task(i) for i in range(MAX_OPEN_TASKS)]
    assert add_task(half_done, task(999)) is not None


def test_done_and_undone_record_who_and_when_and_bump_the_version() -> None:
    tasks = [task(1), task(2)]
    after, done = mark(tasks, "t1", done=True, at=at(30), by="Rina")
    assert done is not None and (done.done_at, done.done_by, done.version) == (at(30), "Rina", 2)
    assert [t.done_at for t in after] == [at(30), None]
    assert tasks[0].done_at is None  # never changed in place
    same, nothing = mark(after, "t1", done=True, at=at(40), by="Budi")
    assert nothing is None and same[0].done_by == "Rina"  # already done: stays as it was
    reopened, undone = mark(after, "t1", done=False, at=at(50), by="Budi")
    assert undone is not None and (undone.done_at, undone.done_by, undone.version) == (
        None, None, 3)
    assert reopened[0] is undone
    assert mark(tasks, "nope", done=True, at=at(1), by="x") == (tasks, None)


def test_a_lead_keeps_every_open_task_and_its_newest_done_ones() -> None:
    tasks: list[Task] = [task(i) for i in range(MAX_DONE_KEPT + 5)]
    for i in range(MAX_DONE_KEPT + 5):
        tasks, _ = mark(tasks, f"t{i}", done=True, at=at(100 + i), by="x")
    tasks = add_task(tasks, task(500)) or []
    assert len(open_tasks(tasks)) == 1
    done_ids = [t.task_id for t in tasks if t.done_at is not None]
    assert done_ids == [f"t{i}" for i in range(5, MAX_DONE_KEPT + 5)]  # the 5 oldest left


def test_closing_every_open_task() -> None:
    tasks = [task(1), task(2, done=at(5)), task(3)]
    after, closed = close_open(tasks, at=at(60), by="Dewi")
    assert [t.task_id for t in closed] == ["t1", "t3"]
    assert all(t.done_at == at(60) and t.done_by == "Dewi" and t.version == 2 for t in closed)
    assert after[1] is tasks[1]  # a done one is left as it was
    assert close_open(after, at=at(70), by="x") == (after, [])


def test_merging_task_lists_keeps_one_per_id() -> None:
    moved = rehome([task(1), task(2)], lead_id="S", lead_key="ws1:+62813")
    assert all((t.lead_id, t.lead_key, t.version) == ("S", "ws1:+62813", 2) for t in moved)
    merged = merge_tasks([task(1), task(3)], moved)
    assert [t.task_id for t in merged] == ["t1", "t3", "t2"]
    assert merged[0].lead_id == "L"  # the survivor's own copy wins


def test_every_small_sequence_of_changes_stays_consistent() -> None:
    """Add, done, undone in every order for two tasks: one per id, versions only grow, a
    done task says who and when, an open one neither."""
    ops = [("add", 1), ("add", 2), ("done", 1), ("done", 2), ("undone", 1), ("undone", 2)]
    for seq in itertools.permutations(ops, 4):
        tasks: list[Task] = []
        versions: dict[str, int] = {}
        for n, (op, i) in enumerate(seq):
            if op == "add":
                tasks = add_task(tasks, task(i)) or tasks
            else:
                tasks, _ = mark(tasks, f"t{i}", done=op == "done", at=at(n), by="x")
            assert len({t.task_id for t in tasks}) == len(tasks)
            for t in tasks:
                assert t.version >= versions.get(t.task_id, 0)
                versions[t.task_id] = t.version
                assert (t.done_at is None) == (t.done_by is None)


def test_due_filters_on_a_fixed_clock() -> None:
    # 16:00 in Jakarta (UTC+7) on 1 Dec: today ends at 17:00 UTC
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert due_before("overdue", now, JKT) == now
    assert due_before("today", now, JKT) == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    assert due_before("all", now, JKT) is None
    # 23:30 in Jakarta is still 1 Dec there; 00:30 is the next day
    late = datetime(2026, 12, 1, 16, 30, tzinfo=UTC)
    assert due_before("today", late, JKT) == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    after_midnight = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)
    assert due_before("today", after_midnight, JKT) == datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    t = task(1, due=now - timedelta(minutes=1))
    assert is_overdue(t, now) and not is_overdue(t, now - timedelta(hours=1))
    assert not is_overdue(task(2), now)  # no due time: never overdue
    assert not is_overdue(task(3, due=now - timedelta(days=1), done=now), now)


def test_timeline_lines() -> None:
    t = task(1, due=datetime(2026, 12, 1, 10, 0, tzinfo=UTC)).model_copy(
        update={"owner": "Dewi", "text": "kirim  katalog\n" + "x" * 200})
    line = task_note("new", t)
    assert line.startswith("Tugas baru / new task untuk / for Dewi: kirim katalog x")
    assert line.endswith("(jatuh tempo / due 2026-12-01T10:00:00+00:00)") and "\u2026" in line
    assert task_note("done", task(2)) == "Tugas selesai / task done: call 2"
    assert task_note("undone", task(2)) == "Tugas dibuka lagi / task reopened: call 2"


# ----------------------------------------------------------------------------- on a lead

def _lead() -> object:
    return apply_command(None, cmd(0, "note", content="hi")).lead


def test_a_task_command_makes_a_task_with_a_note_and_is_applied_once() -> None:
    lead = apply_command(_lead(), cmd(1, "assign", owner="Dewi")).lead  # type: ignore[arg-type]
    a = apply_command(lead, cmd(2, "task", author="Rina", task_id="T1", content=" telepon ",
                                due_at=at(600)))
    [t] = a.tasks
    assert (t.task_id, t.text, t.owner, t.created_by, t.due_at, t.version) == (
        "T1", "telepon", "Dewi", "Rina", at(600), 1)  # the lead's owner by default
    assert a.lead.tasks == [t] and a.lead_changed
    assert a.notes[0].content.startswith("Tugas baru / new task untuk / for Dewi: telepon")
    again = apply_command(a.lead, cmd(2, "task", author="Rina", task_id="T1", content="x"))
    assert again.tasks == [] and again.notes == [] and not again.lead_changed
    own = apply_command(a.lead, cmd(3, "task", task_id="T2", content="y", owner="Budi"))
    assert own.tasks[0].owner == "Budi"


def test_done_and_undone_through_commands() -> None:
    lead = apply_command(_lead(), cmd(1, "task", task_id="T1",  # type: ignore[arg-type]
                                      content="telepon")).lead
    d = apply_command(lead, cmd(5, "task_done", author="Rina", task_id="T1"))
    assert (d.tasks[0].done_by, d.tasks[0].done_at) == ("Rina", at(5))
    assert d.notes[0].content == "Tugas selesai / task done: telepon"
    assert apply_command(d.lead, cmd(6, "task_done", task_id="T1")).tasks == []
    u = apply_command(d.lead, cmd(7, "task_undone", "brain-bot", task_id="T1"))
    assert u.tasks[0].done_at is None and u.notes[0].author_type == "bot"
    unknown = apply_command(lead, cmd(8, "task_done", task_id="nope"))
    assert unknown.tasks == [] and unknown.notes == []


@pytest.mark.parametrize("to", ["converted", "archived"])
def test_converting_or_archiving_closes_open_tasks_recorded(to: str) -> None:
    lead = apply_command(_lead(), cmd(1, "task", task_id="T1", content="a")).lead  # type: ignore[arg-type]
    lead = apply_command(lead, cmd(2, "task", task_id="T2", content="b")).lead
    lead = apply_command(lead, cmd(3, "task_done", task_id="T2")).lead
    moved = apply_command(lead, cmd(10, "status", author="Dewi", actor="Dewi", status=to))
    [closed] = moved.tasks
    assert (closed.task_id, closed.done_by, closed.done_at) == ("T1", "Dewi", at(10))
    assert [n.content for n in moved.notes] == [
        f"1 tugas terbuka ditutup karena lead {to} / 1 open task(s) closed: the lead is {to}"]
    assert moved.notes[0].author_type == "system"
    # a move elsewhere closes nothing
    assert apply_command(lead, cmd(11, "status", status="contacted")).tasks == []


def test_sarah_completing_a_chat_closes_open_tasks() -> None:
    lead = apply_command(_lead(), cmd(1, "task", task_id="T1", content="a")).lead  # type: ignore[arg-type]
    done = apply_sarah(lead, sarah(20, "completed"))
    assert done.lead.lead_status == "converted"
    assert done.tasks[0].done_by == "sarah-bot" and done.lead.tasks[0].done_at == at(20)


def test_a_merge_moves_the_duplicates_tasks_to_the_survivor() -> None:
    survivor = apply_command(_lead(), cmd(1, "task", task_id="S1", content="s")).lead  # type: ignore[arg-type]
    dup = apply_command(None, cmd(0, "task", task_id="D1", content="d")).lead
    dup = dup.model_copy(update={"lead_key": "ws1:+6281300000001", "lead_id": "dup-id",
                                 "tasks": rehome(dup.tasks, lead_id="dup-id",
                                                 lead_key="ws1:+6281300000001")})
    merge = Command(event_id="m1", workspace_id="ws1", lead_key=dup.lead_key,
                    occurred_at=at(9), kind="merge", actor_role="human", author="Dewi",
                    target_key=KEY)
    out = absorb(survivor, absorb_command(merge, dup, KEY))
    assert [t.task_id for t in out.lead.tasks] == ["S1", "D1"]
    [moved] = out.tasks
    assert (moved.task_id, moved.lead_id, moved.lead_key) == ("D1", survivor.lead_id, KEY)
    assert moved.version == 3  # made, moved to the duplicate here, moved to the survivor
