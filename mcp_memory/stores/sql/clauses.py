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

STATEMENT_CACHE_SIZE = 1024
"""Distinct statement strings kept: the stores' statements and the search's filter combinations fit many times
over; a statement with values written into it (none on the hot paths) only costs the parse when evicted."""


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def text(sql: str) -> TextClause:
    """``sqlalchemy.text(sql)``, parsed once per distinct string."""
    return sqlalchemy.text(sql)


__all__ = ["STATEMENT_CACHE_SIZE", "text"]
