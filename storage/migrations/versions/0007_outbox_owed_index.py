"""Outbox: a partial index of the owed rows by lane, rank and id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Hand-checked against ``storage/models.py`` (``test_models_match_migrations_when_upgraded_to_head``).
Self-contained: a migration never imports the models it predates.

A broadcast's claim (``claim_lane``: owed rows of one lane, by rank and id, 64 at a time)
scanned the whole table and sorted what it found: 2.2 ms for 10,000 owed rows on SQLite, and
the table keeps its sent rows until the retention purge. With this index it reads the first
64 in order. Partial (``sent_at IS NULL AND failed_at IS NULL``): sent and failed rows never
enter it, so it stays as small as the backlog.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWED = sa.text("sent_at IS NULL AND failed_at IS NULL")


def upgrade() -> None:
    """Add the index of owed rows."""
    op.create_index(
        "ix_outbox_owed_lane_rank_id", "outbox", ["lane", "rank", "id"],
        sqlite_where=_OWED, postgresql_where=_OWED,
    )  # fmt: skip


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_outbox_owed_lane_rank_id", table_name="outbox")
