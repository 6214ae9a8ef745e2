"""SQL text clauses made once per statement string.

``sqlalchemy.text`` scans its string for ``:name`` parameters with a regular expression on every call: ~230 us for
the hybrid search statement (5.7 kB), 20-50 us for the working-memory and event statements, paid again by every
call that runs them. The clause is immutable (``bindparams`` and ``columns`` return new ones), so one made per
string serves every call; SQLAlchemy's compiled cache is keyed on the string either way.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy
from sqlalchemy.sql.elements import TextClause

STATEMENT_CACHE_SIZE = 512
"""Distinct statement strings kept: the stores' statements and the search's filter combinations fit many times
over."""

CACHED_MAX_COLONS = 32
"""A statement with more colons than this (so, at most, more parameters) is parsed every time, not kept: those are
the ones with a parameter per item of a list (forget's episode ids, erase's batches of 500), whose every length is
another string and whose clause holds a parameter object per item (one shape at lengths 1 to 1,000 held ~180 MB).
The search statements have 12-23 colons (casts included)."""


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _cached(sql: str) -> TextClause:
    return sqlalchemy.text(sql)


def text(sql: str) -> TextClause:
    """``sqlalchemy.text(sql)``, parsed once per distinct string of a few parameters."""
    if sql.count(":") > CACHED_MAX_COLONS:
        return sqlalchemy.text(sql)
    return _cached(sql)


__all__ = ["CACHED_MAX_COLONS", "STATEMENT_CACHE_SIZE", "text"]
