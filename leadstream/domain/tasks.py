"""Follow-up tasks on a lead (issue #29): pure rules, no I/O.

A person or the Brain bot gives a lead a task: a text, a due time (optional) and the person
who should do it (optional). Done and undone record who and when. When a lead moves to
converted or archived its open tasks close, done by whoever moved it, with a note on the
timeline: nobody should be reminded to chase a lead that bought or left.

The lead's state keeps every open task (at most `MAX_OPEN_TASKS`; one more is refused with a
note) and its `MAX_DONE_KEPT` most recently done ones, so a state stays small. A task that
leaves the state keeps its replica row, and every version of it is on the tasks topic.

Lists: `overdue` is every open task due before now; `today` every open task due before the
end of today in the workspace's timezone (so what is overdue is on it too: what has to be
done today); `all` every task.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from leadstream.domain.days import day_bounds, day_of
from leadstream.domain.model import LeadStatus, Task

MAX_OPEN_TASKS = 50
MAX_DONE_KEPT = 20
MAX_TASK_TEXT = 1_000
#: a lead moved here has nothing left to follow up
CLOSING_STATUSES: tuple[LeadStatus, ...] = ("converted", "archived")

DueFilter = Literal["overdue", "today", "all"]


def open_tasks(tasks: Sequence[Task]) -> list[Task]:
    return [t for t in tasks if t.done_at is None]


def _trim(tasks: list[Task]) -> list[Task]:
    """Every open task and the `MAX_DONE_KEPT` most recently done, in their order."""
    done = [t for t in tasks if t.done_at is not None]
    if len(done) <= MAX_DONE_KEPT:
        return tasks
    keep = {t.task_id for t in sorted(done, key=lambda t: (t.done_at, t.task_id))[-MAX_DONE_KEPT:]}
    return [t for t in tasks if t.done_at is None or t.task_id in keep]


def add_task(tasks: Sequence[Task], task: Task) -> list[Task] | None:
    """`tasks` with `task` last; None when the lead has it already (the same command again)
    or has `MAX_OPEN_TASKS` open ones."""
    if any(t.task_id == task.task_id for t in tasks):
        return None
    if len(open_tasks(tasks)) >= MAX_OPEN_TASKS:
        return None
    return _trim([*tasks, task])


def mark(tasks: Sequence[Task], task_id: str, *, done: bool, at: datetime, by: str
         ) -> tuple[list[Task], Task | None]:
    """Mark a task done (who, when) or open again; (tasks, the new version of the task), or
    the tasks unchanged and None when the lead has no such task or it is so already."""
    out = list(tasks)
    for i, t in enumerate(out):
        if t.task_id != task_id:
            continue
        if (t.done_at is not None) == done:
            return out, None
        new = t.model_copy(update={"done_at": at if done else None,
                                   "done_by": by if done else None,
                                   "version": t.version + 1})
        out[i] = new
        return _trim(out), new
    return out, None


def close_open(tasks: Sequence[Task], *, at: datetime, by: str) -> tuple[list[Task], list[Task]]:
    """Every open task done at `at` by `by`: (tasks, the closed tasks' new versions)."""
    out: list[Task] = []
    closed: list[Task] = []
    for t in tasks:
        if t.done_at is None:
            new = t.model_copy(update={"done_at": at, "done_by": by, "version": t.version + 1})
            closed.append(new)
            out.append(new)
        else:
            out.append(t)
    return (_trim(out), closed) if closed else (list(tasks), [])


def rehome(tasks: Sequence[Task], *, lead_id: str, lead_key: str) -> list[Task]:
    """A merged duplicate's tasks, now the survivor's (each a new version)."""
    return [t.model_copy(update={"lead_id": lead_id, "lead_key": lead_key,
                                 "version": t.version + 1}) for t in tasks]


def merge_tasks(survivor: Sequence[Task], moved: Sequence[Task]) -> list[Task]:
    """The survivor's tasks and the duplicate's (rehomed), one per id; the open bound is not
    applied here (nothing a person wrote is dropped by a merge)."""
    have = {t.task_id for t in survivor}
    return _trim([*survivor, *(t for t in moved if t.task_id not in have)])


def due_before(due: DueFilter, now: datetime, tz: str) -> datetime | None:
    """The bound of a due filter: open tasks due before it (None: no bound, for `all`)."""
    if due == "overdue":
        return now
    if due == "today":
        return day_bounds(day_of(now, tz), tz)[1]
    return None


def is_overdue(task: Task, now: datetime) -> bool:
    return task.done_at is None and task.due_at is not None and task.due_at < now


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def task_note(event: Literal["new", "done", "undone"], task: Task) -> str:
    """The timeline's line for a task change."""
    if event == "new":
        due = f" (jatuh tempo / due {task.due_at.isoformat()})" if task.due_at else ""
        who = f" untuk / for {task.owner}" if task.owner else ""
        return f"Tugas baru / new task{who}: {_short(task.text)}{due}"
    if event == "done":
        return f"Tugas selesai / task done: {_short(task.text)}"
    return f"Tugas dibuka lagi / task reopened: {_short(task.text)}"


def closed_note(closed: Sequence[Task], status: str) -> str:
    return (f"{len(closed)} tugas terbuka ditutup karena lead {status} / "
            f"{len(closed)} open task(s) closed: the lead is {status}")
