"""Search reads the time a query names: a period ("in March", "last week") puts the episodes recorded in it first,
and "now", "current", "these days" favour the newer of comparably relevant episodes (a changed fact's later
statement). Periods are read relative to the time of the search (the runtime's clock), in UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import ScoredEpisode
from mcp_memory.query_time import read_time
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC).timestamp()  # a Wednesday


def window(query: str, now: float = NOW) -> tuple[str, str] | None:
    """The period read from ``query`` as [first day, day after the last]."""
    got = read_time(query, now).window
    if got is None:
        return None
    start, end = (datetime.fromtimestamp(t, UTC).date().isoformat() for t in got)
    return start, end


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("what did I say in March", ("2024-03-01", "2024-04-01")),  # the latest March that has begun
        ("which city did I visit last March?", ("2024-03-01", "2024-04-01")),
        ("where did I go on holiday in June 2024?", ("2024-06-01", "2024-07-01")),
        ("anything from May of 2023", ("2023-05-01", "2023-06-01")),
        ("the call on March 3rd, 2024", ("2024-03-03", "2024-03-04")),
        ("the 3rd of March 2024", ("2024-03-03", "2024-03-04")),
        ("notes from 2024-03-19", ("2024-03-19", "2024-03-20")),
        ("what happened in 2023?", ("2023-01-01", "2024-01-01")),
        ("every place I travelled to last year", ("2024-01-01", "2025-01-01")),
        ("what did we decide yesterday", ("2025-01-14", "2025-01-15")),
        ("last week's deploy", ("2025-01-06", "2025-01-13")),  # weeks run Monday to Sunday
        ("what broke last month", ("2024-12-01", "2025-01-01")),
        ("two months ago", ("2024-11-01", "2024-12-01")),
        ("3 days ago", ("2025-01-12", "2025-01-13")),
        ("over the past 2 weeks", ("2025-01-01", "2025-01-16")),  # a span up to now, not a calendar period
        ("what did I fix last summer", ("2024-06-01", "2024-09-01")),
        ("in the summer of 2023", ("2023-06-01", "2023-09-01")),
        ("in March last year", ("2024-03-01", "2024-04-01")),  # expressions narrow each other
        ("since May", ("2024-05-01", "2025-01-16")),  # from then until now
        ("earlier this year", ("2025-01-01", "2025-01-16")),
    ],
)
def test_a_named_period_becomes_a_window(query: str, expected: tuple[str, str]) -> None:
    assert window(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "may I ask how the deploy went",  # "may" and "march" are words too: a month needs a preposition or a year
        "march the release forward",
        "the rent went up to 2240",  # a number is not a year without a preposition
        "how did the parser crash get fixed",
        "what is 2024-13-40",  # not a date
    ],
)
def test_no_period_is_read_where_none_is_named(query: str) -> None:
    assert window(query) is None


def test_a_month_is_the_latest_one_not_in_the_future() -> None:
    june = datetime(2025, 6, 20, tzinfo=UTC).timestamp()
    assert window("in March", june) == ("2025-03-01", "2025-04-01")
    assert window("in June", june) == ("2025-06-01", "2025-07-01")
    assert window("last June", june) == ("2024-06-01", "2024-07-01")  # "last": before this month
    assert window("in September", june) == ("2024-09-01", "2024-10-01")


@pytest.mark.parametrize(
    ("query", "latest"),
    [
        ("where do I live now", True),
        ("what's my current role", True),
        ("who is my employer these days", True),
        ("do I still run on Sundays", True),
        ("my latest blood test", True),
        ("where did I live", False),
        ("the knowledge of history", False),  # "now" only as a word of its own
    ],
)
def test_present_state_words_ask_for_the_newer_statement(query: str, latest: bool) -> None:
    assert read_time(query, NOW).latest is latest


def day(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(hour=12, tzinfo=UTC).timestamp()


@pytest.mark.anyio
async def test_search_on_sqlite_prefers_the_named_month_and_the_newer_statement(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", embedding_provider="hash")
    async with MemoryRuntime(settings, clock=clock) as rt:
        project, agent = uuid.uuid4(), uuid.uuid4()

        async def say(date: str, text: str) -> uuid.UUID:
            clock.now = day(date)
            ep = await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=agent,
                task_type="dialogue",
                task_description=text,
                outcome="success",
            )
            return ep.episode_id

        lisbon = await say("2024-02-10", "I said I want to visit Lisbon for the food")
        porto = await say("2024-03-12", "I said I booked a trip to Porto")
        bike = await say("2024-03-20", "Bought a second-hand road bike")
        await say("2024-05-02", "I said I want to visit Rome next spring, and I said it twice")
        old_home = await say("2024-01-08", "I live in Leeds")
        new_home = await say("2024-09-30", "We moved house to York and I live with my sister")
        clock.now = day("2025-01-15")

        def ids(hits: list[ScoredEpisode]) -> list[uuid.UUID]:
            return [h.episode_id for h in hits]

        # March's episodes first: the one about what was said, then the rest of March (no word in common).
        march = ids(await rt.episodic.search(project, "what did I say in March", 10))
        assert march[:2] == [porto, bike]
        assert lisbon in march[2:]  # a preference, not a filter: other months follow
        for mode in ("text", "vector", "hybrid"):  # whichever retriever ranks, March comes first
            got = ids(await rt.episodic.search(project, "what did I say in March", 2, mode=mode))
            assert set(got) == {porto, bike}, mode

        # The same words without a period: the best match of any month.
        assert ids(await rt.episodic.search(project, "what did I say", 10))[0] != porto

        # Where one lives: the older, shorter statement matches best; "now" asks for the newer one.
        assert ids(await rt.episodic.search(project, "where do I live", 1, mode="text")) == [old_home]
        assert ids(await rt.episodic.search(project, "where do I live now", 1)) == [new_home]
        assert ids(await rt.episodic.search(project, "where do I live now", 1, mode="text")) == [new_home]
