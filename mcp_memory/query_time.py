"""Time read in a search query: the period it names ("in March", "last week", "two months ago") and whether it
asks for the current state of something ("where do I live now").

Episodes carry the time they were recorded, but neither retriever reads dates: full text matches the word
"March" only where an episode says it, and a sentence embedding barely moves with a month's name. So a question
whose answer the date decides ("which city did I visit last March?") ranks every trip alike, and one asking for
the newest statement ("what's my current coffee?") ranks the old and the new one by wording alone. This module
turns such English expressions into a time window (UTC, relative to a reference "now": the time of the search)
and a "latest" flag; :mod:`mcp_memory.services.episodic` prefers episodes inside the window and, for the flag,
the newer of comparably relevant ones.

Rules are general English time expressions, each anchored on words that leave no doubt: a month's name counts
only after a preposition ("in May", "last March", "since June") or with a year ("May 2024"), as "may" and "march"
are also a verb. Several expressions narrow each other ("in March last year": their windows intersect). Nothing
here knows any data set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "a couple of": 2,
    "couple of": 2,
}
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
"""Meteorological seasons of the northern hemisphere, by their first month; each lasts three months (winter: from
December into the next year's February)."""

LATEST = re.compile(
    r"\b(current(ly)?|now|nowadays|these days|latest|newest|most recent(ly)?|recently|lately|still|any ?more|"
    r"at (the )?(moment|present)|presently|right now|no longer)\b"
)
"""Words asking for the present state of something: the newer of comparably relevant episodes should win (the
last statement of a changed fact is the true one)."""

_MONTH = "(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + ")"
_NUMBER = "(?:" + "|".join(sorted((re.escape(n) for n in NUMBERS), key=len, reverse=True)) + r"|\d{1,2})"
_YEAR = r"(?:19|20)\d\d"
_PREP = r"(?:in|during|since|from|of|throughout|early in|late in|in early|in late)"
_UNIT = r"(?P<unit>day|week|month|year)s?"
_SEASON = r"(?P<season>spring|summer|autumn|fall|winter)"


@dataclass(frozen=True, slots=True)
class QueryTime:
    """What a query says about time. ``window``: [start, end) in epoch seconds, or None (no period named);
    ``latest``: the query asks for the present state (prefer newer episodes)."""

    window: tuple[float, float] | None = None
    latest: bool = False


def _ts(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def _day(d: date) -> tuple[date, date]:
    return d, d + timedelta(days=1)


def _year(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def _month(year: int, month: int) -> tuple[date, date]:
    return _months(year, month, 1)


def _months(year: int, month: int, count: int) -> tuple[date, date]:
    """``count`` calendar months from ``month`` of ``year`` (month may run past 12: into the next years)."""
    first = year * 12 + month - 1
    last = first + count
    return date(first // 12, first % 12 + 1, 1), date(last // 12, last % 12 + 1, 1)


def _shift_months(d: date, months: int) -> tuple[int, int]:
    n = d.year * 12 + d.month - 1 - months
    return n // 12, n % 12 + 1


def _week(d: date) -> tuple[date, date]:
    start = d - timedelta(days=d.weekday())  # weeks run Monday to Sunday
    return start, start + timedelta(days=7)


def _season(year: int, first_month: int) -> tuple[date, date]:
    """The season starting in ``first_month`` named for ``year``; a winter is named for the year of its January."""
    return _months(year - 1 if first_month == 12 else year, first_month, 3)


def _past_month(today: date, month: int, *, strictly: bool) -> int:
    """The year of the latest ``month`` not after today's month (``strictly``: before it, as in "last March")."""
    ahead = month > today.month or (strictly and month == today.month)
    return today.year - 1 if ahead else today.year


def _past_season(today: date, first_month: int, *, strictly: bool) -> tuple[date, date]:
    """The latest season starting in ``first_month`` that has begun by today (``strictly``: that has ended)."""
    for year in (today.year + 1, today.year, today.year - 1):
        start, end = _season(year, first_month)
        if (end <= today) if strictly else (start <= today):
            return start, end
    return _season(today.year - 2, first_month)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word]


def _named_periods(text: str, today: date) -> list[tuple[int, tuple[date, date]]]:
    """Every period the text names, each with where it starts in the text (the first one wins a conflict)."""
    found: list[tuple[int, tuple[date, date]]] = []

    def add(match: re.Match[str], window: tuple[date, date]) -> None:
        found.append((match.start(), window))

    def add_day(match: re.Match[str], year: int, month: int, day: int) -> None:
        try:
            add(match, _day(date(year, month, day)))
        except (ValueError, OverflowError):  # not a date (31 February, year 0), or its end past year 9999
            return

    for m in re.finditer(r"\b(?P<y>\d{4})-(?P<m>\d\d)(?:-(?P<d>\d\d))?\b", text):  # ISO: 2024-03, 2024-03-19
        if m["d"] is None:
            if 1 <= int(m["m"]) <= 12 and 1 <= int(m["y"]) <= 9998:  # a month dates can hold, its end included
                add(m, _month(int(m["y"]), int(m["m"])))
        else:
            add_day(m, int(m["y"]), int(m["m"]), int(m["d"]))
    for m in re.finditer(rf"\b(?P<m>{_MONTH})\.? (?P<d>\d{{1,2}})(?:st|nd|rd|th)?,? (?P<y>{_YEAR})\b", text):
        add_day(m, int(m["y"]), MONTHS[m["m"]], int(m["d"]))  # March 3rd, 2024
    for m in re.finditer(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<m>{_MONTH})\.?,? (?P<y>{_YEAR})\b", text):
        add_day(m, int(m["y"]), MONTHS[m["m"]], int(m["d"]))  # 3rd of March 2024
    for m in re.finditer(rf"\b(?P<m>{_MONTH})\.?,? (?:of )?(?P<y>{_YEAR})\b", text):  # March 2024, March of 2024
        add(m, _month(int(m["y"]), MONTHS[m["m"]]))
    for m in re.finditer(rf"\b(?P<w>{_PREP}|last|this|past) (?P<m>{_MONTH})\b(?!\.?,? (?:of )?\d)", text):  # in March
        month, word = MONTHS[m["m"]], m["w"]
        if word == "this":
            add(m, _month(today.year, month))
        else:
            add(m, _month(_past_month(today, month, strictly=word in ("last", "past")), month))
    for m in re.finditer(rf"\b{_PREP} (?:the (?:year )?)?(?P<y>{_YEAR})\b(?!-)", text):  # in 2024
        add(m, _year(int(m["y"])))
    for m in re.finditer(rf"\b{_SEASON},? (?:of )?(?P<y>{_YEAR})\b", text):  # summer 2024, summer of 2024
        add(m, _season(int(m["y"]), SEASONS[m["season"]]))
    for m in re.finditer(rf"\b(?P<w>last|this|past|(?:in|during|over) the) {_SEASON}\b(?!,? (?:of )?\d)", text):
        first, word = SEASONS[m["season"]], m["w"]
        if word == "this":
            add(m, _season(today.year + (first == 12 and today.month == 12), first))
        else:
            add(m, _past_season(today, first, strictly=word in ("last", "past")))
    for m in re.finditer(r"\b(?:the day before yesterday|yesterday|last night|today|tonight|this morning)\b", text):
        back = {"the day before yesterday": 2, "yesterday": 1, "last night": 1}.get(m[0], 0)
        add(m, _day(today - timedelta(days=back)))
    for m in re.finditer(r"\b(?P<the>the )?(?P<w>last|this|past) (?P<unit>week(?:end)?|month|year)\b", text):
        word, unit = m["w"], m["unit"]
        if m["the"] is not None and word != "this":
            continue  # "the last month", "the past year": a span up to now (below), not a calendar period
        back = 0 if word == "this" else 1
        if unit in ("week", "weekend"):
            start, end = _week(today - timedelta(days=7 * back))
            add(m, (start + timedelta(days=5) if unit == "weekend" else start, end))
        elif unit == "month":
            add(m, _month(*_shift_months(today, back)))
        else:
            add(m, _year(today.year - back))
    for m in re.finditer(rf"\b(?P<n>{_NUMBER}) {_UNIT} ago\b", text):  # two months ago: that calendar unit
        n, unit = _count(m["n"]), m["unit"]
        if unit == "day":
            add(m, _day(today - timedelta(days=n)))
        elif unit == "week":
            add(m, _week(today - timedelta(days=7 * n)))
        elif unit == "month":
            add(m, _month(*_shift_months(today, n)))
        else:
            add(m, _year(today.year - n))
    for m in re.finditer(rf"\b(?P<the>the )?(?:last|past) (?:(?P<n>{_NUMBER}) )?{_UNIT}\b", text):  # the past 2 weeks
        if m["the"] is None and m["n"] is None:
            continue  # "last month": the calendar period above
        days = {"day": 1, "week": 7, "month": 31, "year": 366}[m["unit"]] * (1 if m["n"] is None else _count(m["n"]))
        add(m, (today - timedelta(days=days), today + timedelta(days=1)))
    for m in re.finditer(r"\bearlier this (?P<unit>week|month|year)\b", text):
        unit = m["unit"]
        start = _week(today)[0] if unit == "week" else date(today.year, today.month if unit == "month" else 1, 1)
        add(m, (start, today + timedelta(days=1)))
    return found


def read_time(query: str, now: float) -> QueryTime:
    """The period and present-state wish a query states, read relative to ``now`` (epoch seconds, UTC)."""
    text = " ".join(query.lower().split())
    today = datetime.fromtimestamp(now, UTC).date()
    periods = sorted(_named_periods(text, today))
    latest = LATEST.search(text) is not None
    if not periods:
        return QueryTime(latest=latest)
    start, end = periods[0][1]
    for _, (s, e) in periods[1:]:  # "in March last year": each names part of the same period
        if max(start, s) < min(end, e):
            start, end = max(start, s), min(end, e)
    if re.search(rf"\bsince ({_MONTH}|{_YEAR}|last|the)\b", text):  # "since March": from then to now
        end = max(end, today + timedelta(days=1))
    return QueryTime(window=(_ts(start), _ts(end)), latest=latest)


__all__ = ["LATEST", "MONTHS", "QueryTime", "read_time"]
