"""The team report (issue #29): per day and per owner, new leads, first-response time and
conversions; and conversion by week of first contact. Pure arithmetic on facts the replica
gives (`db.reports` reads them); no I/O, no clock.

Definitions (what a sales manager reads off it):
* a lead is **new** on the day it was created (its first contact), in the workspace's
  timezone;
* its **first response** is the time from its first inbound message to the first outbound
  message after it (a person's or Sarah's), counted on the day of that inbound message; a
  lead not answered yet is counted as `unanswered`, not as a time;
* a **conversion** is a move to `converted`, on the day it was made;
* the **owner** is the lead's owner now (`null`: unassigned): a report says whose leads
  they are, not who held them on the day;
* **cohorts**: the leads first contacted in each week (Monday first) of the range, and how
  many of them have been converted since (a lead converted and later archived counts).

Medians and p90 interpolate linearly between the closest ranks (numpy's default), in
seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from leadstream.domain.days import day_of

#: the longest range one report covers
MAX_REPORT_DAYS = 366


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def week_of(d: date) -> date:
    """The Monday of `d`'s week."""
    return d - timedelta(days=d.weekday())


class _Cell:
    __slots__ = ("conversions", "new_leads", "response_seconds", "unanswered")

    def __init__(self) -> None:
        self.new_leads = 0
        self.conversions = 0
        self.unanswered = 0
        self.response_seconds: list[float] = []

    def add(self, other: _Cell) -> None:
        self.new_leads += other.new_leads
        self.conversions += other.conversions
        self.unanswered += other.unanswered
        self.response_seconds += other.response_seconds

    def out(self) -> dict[str, Any]:
        r = self.response_seconds
        return {"new_leads": self.new_leads, "conversions": self.conversions,
                "first_response": {"answered": len(r), "unanswered": self.unanswered,
                                   "median_seconds": percentile(r, 50),
                                   "p90_seconds": percentile(r, 90)}}


def team_report(*, start: date, end: date, tz: str,
                new_leads: Iterable[tuple[date, str | None, int]],
                responses: Iterable[tuple[str | None, datetime, datetime | None]],
                conversions: Iterable[tuple[date, str | None, int]],
                cohorts: Iterable[tuple[date, int, int]]) -> dict[str, Any]:
    """The report from the facts: new leads and conversions as (day, owner, count); each
    lead's (owner, first inbound, first outbound after it or None); cohorts as (week's
    Monday, leads, converted). Facts outside [start, end] are left out."""
    cells: dict[date, dict[str | None, _Cell]] = {d: {} for d in day_range(start, end)}

    def cell(day: date, owner: str | None) -> _Cell | None:
        per_day = cells.get(day)
        if per_day is None:
            return None
        c = per_day.get(owner)
        if c is None:
            c = per_day[owner] = _Cell()
        return c

    for day, owner, n in new_leads:
        c = cell(day, owner)
        if c is not None:
            c.new_leads += n
    for day, owner, n in conversions:
        c = cell(day, owner)
        if c is not None:
            c.conversions += n
    for owner, first_in, first_out in responses:
        c = cell(day_of(first_in, tz), owner)
        if c is None:
            continue
        if first_out is None:
            c.unanswered += 1
        else:
            c.response_seconds.append(max(0.0, (first_out - first_in).total_seconds()))

    by_owner: dict[str | None, _Cell] = {}
    total = _Cell()
    days = []
    for day, per_owner in cells.items():
        day_total = _Cell()
        owners = []
        for owner in sorted(per_owner, key=lambda o: (o is None, o or "")):
            c = per_owner[owner]
            owners.append({"owner": owner, **c.out()})
            day_total.add(c)
            by_owner.setdefault(owner, _Cell()).add(c)
        total.add(day_total)
        days.append({"day": day.isoformat(), "owners": owners, "total": day_total.out()})
    weeks = []
    for week, leads, converted in sorted(cohorts):
        if week_of(start) <= week <= end:
            weeks.append({"week": week.isoformat(), "leads": leads, "converted": converted,
                          "rate": round(converted / leads, 4) if leads else None})
    return {
        "from": start.isoformat(), "to": end.isoformat(), "timezone": tz,
        "days": days,
        "owners": [{"owner": o, **by_owner[o].out()}
                   for o in sorted(by_owner, key=lambda o: (o is None, o or ""))],
        "total": total.out(),
        "cohorts": weeks,
    }


def fmt_seconds(s: float | None) -> str:
    """A response time as a person reads it (Indonesian units): 45 dtk, 12 mnt, 3,5 jam."""
    if s is None:
        return "-"
    if round(s) < 60:
        return f"{round(s)} dtk"
    if round(s / 60) < 60:
        return f"{round(s / 60)} mnt"
    return f"{s / 3600:.1f} jam".replace(".", ",")
