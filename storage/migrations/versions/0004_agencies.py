"""Agency handoff: assignment progress (refusal, acknowledgement deadline, card), inbound
request keys (replays refused).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Hand-checked against ``storage/models.py`` (``test_models_match_migrations_when_upgraded_to_head``).
Self-contained: a migration never imports the models it predates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("declined_at", "ack_due_at", "ack_reminded_at", "ack_escalated_at")


def _id() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL; ``INTEGER PRIMARY KEY`` (the rowid) on SQLite."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.DateTime:
    """Aware timestamps; the application stores UTC (SQLite: naive UTC text)."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the agencies' columns and the inbound request keys."""
    with op.batch_alter_table("assignments") as batch:
        for name in _TIMES:
            batch.add_column(sa.Column(name, _timestamp(), nullable=True))
        batch.add_column(sa.Column("decline_reason", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("card_chat_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("card_message_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_assignments_ack_due_at", "assignments", ["ack_due_at"])
    op.create_table(
        "agency_requests",
        sa.Column("id", _id(), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("request_key", sa.String(length=128), nullable=False),
        sa.Column("received_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_requests")),
        sa.UniqueConstraint(
            "agency_code", "request_key", name=op.f("uq_agency_requests_agency_code_request_key")
        ),
    )
    op.create_index("ix_agency_requests_received_at", "agency_requests", ["received_at"])


def downgrade() -> None:
    """Drop the agencies' columns and table (and their data)."""
    op.drop_index("ix_agency_requests_received_at", table_name="agency_requests")
    op.drop_table("agency_requests")
    op.drop_index("ix_assignments_ack_due_at", table_name="assignments")
    with op.batch_alter_table("assignments") as batch:
        for name in (*_TIMES, "decline_reason", "card_chat_id", "card_message_id"):
            batch.drop_column(name)
