"""The team's workflow on a lead (issue #29): who owns it and its tags. Pure rules; the
command rule (`rules.apply_command`) applies them and records each change on the lead's
timeline as a note by whoever made it.

Tags are labels a workspace makes up as it goes ("reseller", "minta katalog"): one spelling
per label (trimmed, inner spaces collapsed, lower case, a leading `#` dropped), at most
`MAX_TAG` characters, and a lead keeps its `MAX_TAGS` newest. Sarah may tag too, at most
`SARAH_MAX_TAG_CHANGES` labels a request, so a chatbot loop cannot flood a lead.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_TAG = 32
MAX_TAGS = 20
#: labels added or removed in one request by the Sarah bot
SARAH_MAX_TAG_CHANGES = 5


def normalize_tag(raw: str) -> str:
    """The one spelling of a label; ValueError when nothing (or too much) is left."""
    tag = " ".join(raw.replace("\x00", "").split()).lower().lstrip("#").strip()
    if not tag:
        raise ValueError("a tag needs at least one character")
    if len(tag) > MAX_TAG:
        raise ValueError(f"a tag is at most {MAX_TAG} characters")
    return tag


def apply_tags(current: Sequence[str], add: Sequence[str], remove: Sequence[str],
               limit: int = MAX_TAGS) -> list[str]:
    """`current` without `remove`, then with `add` (a label it has keeps its place; new ones
    go last), the newest `limit` kept. A label both added and removed is added."""
    adding = set(add)
    gone = {t for t in remove if t not in adding}
    out = [t for t in current if t not in gone]
    for t in add:
        if t not in out:
            out.append(t)
    return out[-limit:] if len(out) > limit else out


def tag_note(before: Sequence[str], after: Sequence[str]) -> str | None:
    """What a tag change did, for the timeline ("Label: +reseller −dingin"); None if
    nothing."""
    added = [t for t in after if t not in before]
    removed = [t for t in before if t not in after]
    if not added and not removed:
        return None
    return "Label: " + " ".join([*(f"+{t}" for t in added), *(f"\u2212{t}" for t in removed)])


def assignment_note(was: str | None, now: str | None) -> str | None:
    """The timeline's line for an owner change; None if the owner stays."""
    if was == now:
        return None
    if now is None:
        return f"Tidak lagi ditugaskan ke {was} / unassigned from {was}"
    if was is None:
        return f"Ditugaskan ke {now} / assigned to {now}"
    return f"Dialihkan dari {was} ke {now} / reassigned from {was} to {now}"


# --------------------------------------------------------------------------- auto-assignment

#: who an automatic assignment is by, on the lead's timeline
AUTO_ASSIGN_AUTHOR = "auto-assign"


def round_robin(people: Sequence[str], turn: int, n: int) -> tuple[list[str], int]:
    """Owners for `n` leads in turn, from the workspace's people in name order starting at
    `turn` (a counter the workspace keeps), and the next turn. A person added or removed
    changes the order from then on; the counter keeps counting, so nobody is favoured."""
    order = sorted(set(people))
    if not order or n <= 0:
        return [], turn
    return [order[(turn + i) % len(order)] for i in range(n)], turn + n
