"""One Alembic environment for both SQL backends, shipped inside the package (no ``alembic.ini``).

Two histories share ``env.py`` and ``script.py.mako``, each in a version location of its own:

- ``versions/postgres/`` (revisions ``0001``...; branch label ``postgres``), run by ``mcp-memory migrate``
  (:mod:`mcp_memory.stores.postgres.schema`);
- ``versions/sqlite/`` (revisions ``sqlite_1``...; branch label ``sqlite``), run at start-up on the embedded file
  (:mod:`mcp_memory.stores.sqlite.upgrade`). Revision ``sqlite_N`` is the SQLite file's schema version N, the
  number its ``schema_version`` table has always recorded.

Why a version location per backend rather than one directory: each backend's configuration sees one line of
revisions, so ``head`` means that backend's head and a Postgres database can never be handed a SQLite revision (or
the reverse). The branch labels still name the two lines when both locations are loaded together (``alembic -x``
tooling, or :func:`alembic_config` with ``"all"``): ``postgres@head`` and ``sqlite@head``.

The caller opens the connection and its transaction and hands it to ``env.py`` in ``config.attributes``
(``connection``, and for Postgres ``version_table_schema``); the embedding dimension (the ``vector(n)`` column's
n) reaches Postgres' first migration through ``config.attributes["embedding_dimension"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # imported when used: importing alembic costs 0.1-0.3 s, which a start at the head never pays
    from alembic.config import Config

Backend = Literal["postgres", "sqlite", "all"]

VERSION_TABLE = "mcp_memory_alembic_version"
"""Alembic's version table, in both backends: a name of our own, so that an application sharing the database with
its own Alembic history (``alembic_version``) does not clash with ours."""

_LOCATION = "mcp_memory:stores/migrations"


def alembic_config(backend: Backend) -> Config:
    """The Alembic configuration of ``backend``'s history (``"all"``: both lines, for looking at them together)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _LOCATION)
    backends = ("postgres", "sqlite") if backend == "all" else (backend,)
    config.set_main_option("version_locations", " ".join(f"{_LOCATION}/versions/{b}" for b in backends))
    config.set_main_option("path_separator", "space")
    return config


__all__ = ["VERSION_TABLE", "Backend", "alembic_config"]
