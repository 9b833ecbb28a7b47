"""The team report's arithmetic (domain.reports; issue #29) on fixed facts: percentiles,
days in the workspace's timezone, owners, unanswered leads, cohorts and the range's edges."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from leadstream.domain.reports import day_range, fmt_seconds, percentile, team_report, week_of

JKT = "Asia/Jakarta"


@pytest.mark.parametrize(("values", "q", "want"), [
    ([], 50, None), ([7], 50, 7), ([7], 90, 7), ([1, 2], 50, 1.5), ([1, 2, 3], 50, 2),
    ([3, 1, 2], 90, 2.8), ([10, 20, 30, 40], 90, 37), ([5, 5, 5], 90, 5), ([1, 100], 0, 1),
    ([1, 100], 100, 100),
])
def test_percentiles_interpolate_between_ranks(values: list[float], q: float,
                                               want: float | None) -> None:
    got = percentile(values, q)
    assert got == want if want is None else math.isclose(got or 0, want)


def test_percentiles_agree_with_a_sort_on_random_samples() -> None:
    rng = random.Random(7)
    for _ in range(200):
        xs = [rng.uniform(0, 1000) for _ in range(rng.randint(1, 40))]
        s = sorted(xs)
        p50 = percentile(xs, 50)
        assert p50 is not None and s[0] <= p50 <= s[-1]
        if len(s) % 2:
            assert p50 == s[len(s) // 2]
        else:
            assert math.isclose(p50, (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2)
        p90 = percentile(xs, 90)
        assert p90 is not None and p50 <= p90 <= s[-1]


def test_weeks_and_days() -> None:
    assert week_of(date(2026, 12, 2)) == date(2026, 11, 30)  # a Wednesday -> its Monday
    assert week_of(date(2026, 11, 30)) == date(2026, 11, 30)
    assert day_range(date(2026, 11, 29), date(2026, 12, 1)) == [
        date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)]


def _jkt(d: int, h: int, m: int = 0) -> datetime:
    """An instant given in Jakarta wall time (UTC+7), in UTC."""
    return datetime(2026, 12, d, h, m, tzinfo=UTC) - timedelta(hours=7)


def test_a_week_of_a_small_team() -> None:
    report = team_report(
        start=date(2026, 12, 1), end=date(2026, 12, 3), tz=JKT,
        new_leads=[(date(2026, 12, 1), "Dewi", 2), (date(2026, 12, 1), None, 1),
                   (date(2026, 12, 2), "Budi", 1), (date(2026, 11, 30), "Dewi", 9)],
        responses=[
            ("Dewi", _jkt(1, 9), _jkt(1, 9, 2)),      # 120 s
            ("Dewi", _jkt(1, 10), _jkt(1, 10, 10)),   # 600 s
            ("Dewi", _jkt(1, 23, 30), _jkt(2, 0, 30)),  # 3,600 s, on the 1st (its inbound)
            (None, _jkt(1, 11), None),                # not answered yet
            ("Budi", _jkt(2, 0, 10), _jkt(2, 0, 11)),  # 60 s on the 2nd in Jakarta
            ("Budi", _jkt(4, 8), _jkt(4, 9)),         # after the range: left out
        ],
        conversions=[(date(2026, 12, 3), "Dewi", 1)],
        cohorts=[(date(2026, 11, 30), 4, 1), (date(2026, 11, 23), 5, 5)],
    )
    assert (report["from"], report["to"], report["timezone"]) == ("2026-12-01", "2026-12-03", JKT)
    assert [d["day"] for d in report["days"]] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    day1 = report["days"][0]
    assert [o["owner"] for o in day1["owners"]] == ["Dewi", None]  # named first, then nobody
    dewi = day1["owners"][0]
    assert dewi["new_leads"] == 2
    assert dewi["first_response"] == {"answered": 3, "unanswered": 0, "median_seconds": 600,
                                      "p90_seconds": pytest.approx(3000)}
    assert day1["owners"][1]["first_response"]["unanswered"] == 1
    assert day1["total"]["new_leads"] == 3
    assert report["days"][1]["owners"][0]["first_response"]["median_seconds"] == 60
    assert report["days"][2]["total"]["conversions"] == 1
    by_owner = {o["owner"]: o for o in report["owners"]}
    assert by_owner["Dewi"]["conversions"] == 1 and by_owner["Budi"]["new_leads"] == 1
    total = report["total"]
    assert (total["new_leads"], total["conversions"]) == (4, 1)
    assert total["first_response"]["answered"] == 4 and total["first_response"][
        "median_seconds"] == 360
    # the range's first week keeps its cohort; the week before is left out
    assert report["cohorts"] == [{"week": "2026-11-30", "leads": 4, "converted": 1,
                                  "rate": 0.25}]


def test_an_empty_range_has_every_day_with_nothing() -> None:
    r = team_report(start=date(2026, 12, 1), end=date(2026, 12, 2), tz=JKT, new_leads=[],
                    responses=[], conversions=[], cohorts=[])
    assert [d["owners"] for d in r["days"]] == [[], []]
    assert r["total"]["first_response"] == {"answered": 0, "unanswered": 0,
                                            "median_seconds": None, "p90_seconds": None}
    assert r["owners"] == [] and r["cohorts"] == []


def test_a_reply_before_the_inbound_clock_is_zero_not_negative() -> None:
    r = team_report(start=date(2026, 12, 1), end=date(2026, 12, 1), tz=JKT, new_leads=[],
                    responses=[("Dewi", _jkt(1, 9), _jkt(1, 9) - timedelta(seconds=3))],
                    conversions=[], cohorts=[])
    assert r["total"]["first_response"]["median_seconds"] == 0


def test_response_times_as_people_read_them() -> None:
    assert [fmt_seconds(s) for s in (None, 45, 59.6, 720, 3590, 12600)] == [
        "-", "45 dtk", "1 mnt", "12 mnt", "1,0 jam", "3,5 jam"]
