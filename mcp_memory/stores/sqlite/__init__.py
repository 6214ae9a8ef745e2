"""The embedded store on one SQLite file: :mod:`.connection` (engine, transactions, WAL checkpoints),
:mod:`.fulltext` (per-project BM25), :mod:`.vectors` (the vector scan), :mod:`.schema` and
:mod:`.legacy_migrations` (today's tables and the upgrades to them), :mod:`.store` (the adapter)."""
