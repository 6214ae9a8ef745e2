"""The store on Postgres with pgvector: :mod:`.connection` (engine, pool, deadlines, error mapping),
:mod:`.statements` (the SQL text and how values cross asyncpg), :mod:`.transitions` (pause and resume of
working memory held in Postgres, sent on asyncpg directly), :mod:`.search` (hybrid recall as one statement),
:mod:`.schema` (the schema's state, the Alembic migrations and the start-up check), :mod:`.store` (the adapter)."""
