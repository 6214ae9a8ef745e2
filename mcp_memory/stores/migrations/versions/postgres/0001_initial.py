"""Initial schema: sessions, events, working memory, checkpoints (JSONB state), episodes (pgvector + full text).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = ("postgres",)
depends_on = None

HNSW_MAX_DIMENSIONS = 2000
"""pgvector's HNSW indexes vectors of at most 2,000 dimensions; wider ones are searched by exact scan."""

# Full-text weights: task_description and lessons (A), outcome_details (B), task_type (C), context_summary (D);
# ts_rank_cd is given the weights {D, C, B, A} = {0.125, 0.25, 0.4, 1.0} by the store (see stores/postgres/search.py).
SEARCH_TEXT = """
    setweight(to_tsvector('english'::regconfig, task_description), 'A')
    || setweight(jsonb_to_tsvector('english'::regconfig, lessons_learned, '["string"]'), 'A')
    || setweight(to_tsvector('english'::regconfig, outcome_details), 'B')
    || setweight(to_tsvector('english'::regconfig, replace(task_type, '_', ' ')), 'C')
    || setweight(to_tsvector('english'::regconfig, context_summary), 'D')
"""


def _dimension() -> int:
    config = context.config
    value = config.attributes.get("embedding_dimension")
    if value is None:
        value = context.get_x_argument(as_dictionary=True).get("embedding_dimension", 256)
    dimension = int(str(value))
    if not 1 <= dimension <= 16000:
        raise ValueError(f"embedding_dimension {dimension} is out of pgvector's range 1-16000")
    return dimension


def upgrade() -> None:
    dimension = _dimension()
    # In public (if it is not installed yet): our search_path would otherwise put it in our own schema.
    op.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    op.execute(
        """CREATE TABLE mcp_memory_meta (
            key text PRIMARY KEY,
            value text NOT NULL
        )"""
    )
    op.execute(f"INSERT INTO mcp_memory_meta (key, value) VALUES ('embedding_dimension', '{dimension}')")
    op.execute(
        """CREATE TABLE sessions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project_id uuid NOT NULL,
            agent_instance_id uuid NOT NULL,
            session_id text NOT NULL,
            agent_type_id uuid,
            status text NOT NULL CHECK (status IN ('running', 'paused', 'terminated')),
            sealed boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            episode_id uuid,
            terminated_at timestamptz,
            terminate_result jsonb,
            UNIQUE (project_id, agent_instance_id, session_id)
        )"""
    )
    # No foreign key on session_pk: its per-row check would be most of the cost of restoring 1,000 keys. Every
    # write locks the session's row first (stores/postgres/store.py), and discarding a session deletes its items itself.
    op.execute(
        """CREATE TABLE working_items (
            session_pk bigint NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            expires_at double precision,
            PRIMARY KEY (session_pk, key)
        )"""
    )
    op.execute("CREATE INDEX working_items_expiry ON working_items (expires_at) WHERE expires_at IS NOT NULL")
    op.execute(
        """CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_pk bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            event_type text NOT NULL,
            at timestamptz NOT NULL,
            duration_ms double precision NOT NULL,
            outcome text NOT NULL,
            detail jsonb NOT NULL DEFAULT '{}'
        )"""
    )
    op.execute("CREATE INDEX events_session ON events (session_pk, id)")
    # state: {"key": ["<the value's JSON text, byte for byte>", expires_at or null], ...}
    op.execute(
        """CREATE TABLE checkpoints (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_pk bigint NOT NULL REFERENCES sessions (id),
            checkpoint_id text NOT NULL,
            created_at timestamptz NOT NULL,
            keys_count integer NOT NULL,
            bytes bigint NOT NULL,
            label text,
            content_hash text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            state jsonb NOT NULL,
            state_bytes bigint NOT NULL,
            UNIQUE (session_pk, checkpoint_id)
        )"""
    )
    op.execute("CREATE INDEX checkpoints_session_newest ON checkpoints (session_pk, created_at DESC, id DESC)")
    op.execute("CREATE INDEX checkpoints_newest ON checkpoints (created_at DESC, id DESC)")
    op.execute(
        f"""CREATE TABLE episodes (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            episode_id uuid NOT NULL UNIQUE,
            project_id uuid NOT NULL,
            agent_instance_id uuid NOT NULL,
            session_id text,
            task_type text NOT NULL,
            task_description text NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'partial')),
            outcome_details text NOT NULL DEFAULT '',
            lessons_learned jsonb NOT NULL DEFAULT '[]',
            importance_score double precision NOT NULL,
            context_summary text NOT NULL DEFAULT '',
            metadata jsonb NOT NULL DEFAULT '{{}}',
            created_at timestamptz NOT NULL,
            embedding vector({dimension}),
            embedding_model text,
            search_text tsvector GENERATED ALWAYS AS ({SEARCH_TEXT}) STORED
        )"""
    )
    op.execute("CREATE INDEX episodes_project_newest ON episodes (project_id, created_at DESC, id DESC)")
    op.execute("CREATE INDEX episodes_newest ON episodes (created_at DESC, id DESC)")
    # Selective search filters find their rows through these (the exact-scan fallback of a filtered vector search).
    op.execute("CREATE INDEX episodes_project_agent ON episodes (project_id, agent_instance_id, created_at DESC)")
    op.execute("CREATE INDEX episodes_project_task_type ON episodes (project_id, task_type, created_at DESC)")
    op.execute("CREATE INDEX episodes_missing_embedding ON episodes (created_at, id) WHERE embedding IS NULL")
    op.execute("CREATE INDEX episodes_search_text ON episodes USING gin (search_text)")
    if dimension <= HNSW_MAX_DIMENSIONS:
        op.execute(
            "CREATE INDEX episodes_embedding_hnsw ON episodes USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )


def downgrade() -> None:
    for table in ("episodes", "checkpoints", "events", "working_items", "sessions", "mcp_memory_meta"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    # The vector extension stays: other tables of this database may use it.
