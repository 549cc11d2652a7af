"""Operator console: ticket console columns, relay edits, assignments, operators, audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Hand-checked against ``storage/models.py`` (``test_models_match_migrations_when_upgraded_to_head``).
Self-contained: a migration never imports the models it predates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL; ``INTEGER PRIMARY KEY`` (the rowid) on SQLite."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.DateTime:
    """Aware timestamps; the application stores UTC (SQLite: naive UTC text)."""
    return sa.DateTime(timezone=True)


_TICKET_TIMES = (
    "queued_at",
    "claimed_at",
    "dispatched_at",
    "acknowledged_at",
    "en_route_at",
    "on_scene_at",
    "resolved_at",
    "last_operator_message_at",
    "sla_realerted_at",
    "sla_escalated_at",
)
_TICKET_IDS = ("operator_chat_id", "operator_thread_id", "operator_card_message_id", "claimed_by")


def upgrade() -> None:
    """Add the console's columns and tables."""
    with op.batch_alter_table("tickets") as batch:
        for name in _TICKET_IDS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("claimed_by_name", sa.Text(), nullable=True))
        for name in _TICKET_TIMES:
            batch.add_column(sa.Column(name, _timestamp(), nullable=True))
        batch.add_column(sa.Column("eta_minutes", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("reopened_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    op.create_index(
        "ix_tickets_operator_chat_id_operator_thread_id",
        "tickets",
        ["operator_chat_id", "operator_thread_id"],
    )
    op.create_index(
        "ix_tickets_operator_chat_id_operator_card_message_id",
        "tickets",
        ["operator_chat_id", "operator_card_message_id"],
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("edited", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    op.create_table(
        "assignments",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ticket_id", _id(), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("dispatched_at", _timestamp(), nullable=False),
        sa.Column("acknowledged_at", _timestamp(), nullable=True),
        sa.Column("en_route_at", _timestamp(), nullable=True),
        sa.Column("eta_minutes", sa.Integer(), nullable=True),
        sa.Column("on_scene_at", _timestamp(), nullable=True),
        sa.Column("completed_at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_assignments_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint(
            "ticket_id", "agency_code", name=op.f("uq_assignments_ticket_id_agency_code")
        ),
    )

    op.create_table(
        "operators",
        sa.Column("id", _id(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_operators_telegram_id")),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", _id(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    """Drop the console's tables and columns (and their data)."""
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("operators")
    op.drop_table("assignments")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("edited")
    op.drop_index("ix_tickets_operator_chat_id_operator_card_message_id", table_name="tickets")
    op.drop_index("ix_tickets_operator_chat_id_operator_thread_id", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in (
            *_TICKET_IDS, "claimed_by_name", *_TICKET_TIMES, "eta_minutes", "reopened_count",
            "version",
        ):  # fmt: skip
            batch.drop_column(name)
