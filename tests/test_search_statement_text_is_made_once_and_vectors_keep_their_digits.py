"""What the search path writes in Python around its statement is the same as before it was made cheaper: a query
vector reaches pgvector as the same decimal digits (so the same float4s, so the same scores), whatever the vector
holds, and a statement's SQLAlchemy clause is parsed once per string and shared by every call without one call's
parameters reaching another."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy

from mcp_memory.ranking import normalize
from mcp_memory.stores.postgres.search import search_sql, vector_text
from mcp_memory.stores.sql.clauses import CACHED_MAX_COLONS, text
from tests import pg_servers

pytestmark = pytest.mark.anyio


def str_written(vector: list[float]) -> str:
    return "[" + ",".join(map(str, normalize(vector))) + "]"


def decimals(written: str) -> list[Decimal]:
    """The exact decimal numbers a vector's text holds: orjson writes 0.0000519 where str writes 5.19e-05, the same
    number, which pgvector's strtof reads as the same float4."""
    return [Decimal(part) for part in written.strip("[]").split(",")]


def test_a_query_vector_is_written_with_the_digits_str_writes() -> None:
    rng = random.Random(11)
    for scale in (1e-30, 1e-6, 1.0, 1e6, 1e30):
        for dims in (1, 3, 384):
            vector = [rng.gauss(0.0, 1.0) * scale for _ in range(dims)]
            assert decimals(vector_text(vector)) == decimals(str_written(vector))
    assert vector_text([3, 4]) == "[0.6,0.8]"
    assert vector_text([0.0, 0.0, 0.0]) == str_written([0.0, 0.0, 0.0])
    assert vector_text([0, 0]) == "[0,0]"  # a zero vector is left as given, ints included


def test_a_vector_json_cannot_hold_is_written_as_str_writes_it() -> None:
    for odd in ([1.0, math.nan], [math.inf, 1.0], [-math.inf, 0.5]):
        assert vector_text(odd) == str_written(odd)
        assert "null" not in vector_text(odd)
    as_numpy = list(np.array([0.25, -1.5, 3.0], dtype=np.float32))
    assert vector_text(as_numpy) == str_written(as_numpy)


async def test_postgres_reads_the_same_vector_from_either_writing() -> None:
    rng = random.Random(5)
    vectors = [[rng.uniform(-1.0, 1.0) for _ in range(256)] for _ in range(20)]
    url = pg_servers.database_url(await pg_servers.migrated_database(embedding_dimension=256))
    different = await pg_servers.first_column(
        url,
        "SELECT i::text FROM unnest(CAST(:a AS text[]), CAST(:b AS text[])) WITH ORDINALITY AS t(a, b, i) "
        "WHERE CAST(a AS vector) IS DISTINCT FROM CAST(b AS vector)",
        {"a": [vector_text(v) for v in vectors], "b": [str_written(v) for v in vectors]},
    )
    assert different == set()


def test_a_statement_clause_is_parsed_once_per_string() -> None:
    sql = "SELECT :a + :b AS total"
    assert text(sql) is text(sql)
    assert text(sql).compare(sqlalchemy.text(sql))
    assert text(sql + " ") is not text(sql)


def test_binding_values_to_a_shared_clause_leaves_it_unbound() -> None:
    shared = text("SELECT :a AS a")
    bound = shared.bindparams(a=1)
    assert bound is not shared
    assert shared._bindparams["a"].value is None
    assert text("SELECT :a AS a") is shared


def test_a_statement_with_a_parameter_per_list_item_is_not_kept() -> None:
    """Every length of such a list is another string, whose clause holds a parameter per item: keeping them all
    would hold hundreds of MB. The search statements are kept."""
    many = "DELETE FROM episodes WHERE id IN (" + ", ".join(f":pk{j}" for j in range(CACHED_MAX_COLONS + 1)) + ")"
    assert text(many) is not text(many)
    assert text(many).compare(sqlalchemy.text(many))
    for retrievers in ((True, True), (True, False), (False, True)):
        sql = search_sql("", text_retriever=retrievers[0], vector_retriever=retrievers[1])
        assert text(sql) is text(sql)
