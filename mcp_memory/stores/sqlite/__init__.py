"""The embedded store on one SQLite file: :mod:`.connection` (engine, transactions, WAL checkpoints),
:mod:`.fulltext` (per-project BM25), :mod:`.vectors` (the vector scan), :mod:`.schema` (today's tables) and
:mod:`.upgrade` (start-up's Alembic step: older files upgraded, new ones created), :mod:`.store` (the adapter)."""
