"""Outbox: rank, stored result, leases, repeat mark, dedup key; chat aliases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

The outbox is served lane by lane, then by ``rank`` (the ticket's priority at enqueue), and
leased to one worker at a time (``claimed_by`` until ``claimed_until``) so two processes on
one PostgreSQL database never send a row twice. ``result`` keeps what Telegram answered;
``repeat`` marks a row sent again after its worker died; ``dedup_key`` rate-limits admin
alerts. ``chat_aliases`` remembers groups that became supergroups (a new chat id).

Self-contained on purpose: a migration never imports the models it changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the outbox columns and indexes and the chat aliases table."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("rank", sa.Integer(), server_default=sa.text("3"), nullable=False)
        )
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("dedup_key", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("repeat", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.create_index("ix_outbox_ticket_id_lane_id", ["ticket_id", "lane", "id"])
        batch.create_index("ix_outbox_dedup_key_created_at", ["dedup_key", "created_at"])
    op.create_table(
        "chat_aliases",
        sa.Column("old_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("new_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("old_id", name=op.f("pk_chat_aliases")),
    )


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_table("chat_aliases")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_dedup_key_created_at")
        batch.drop_index("ix_outbox_ticket_id_lane_id")
        for column in ("repeat", "claimed_until", "claimed_by", "dedup_key", "result", "rank"):
            batch.drop_column(column)
