"""Initial schema: citizens, tickets, timeline, relay log, outbox, ref counters, geocode cache.

Revision ID: 0001
Revises:
Create Date: 2026-05-27

Hand-checked against ``storage/models.py``; the integration suite compares the migrated
database with the models (``test_models_match_migrations_when_upgraded_to_head``).
Self-contained on purpose: a migration never imports the models it predates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL; ``INTEGER PRIMARY KEY`` (the rowid) on SQLite."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.DateTime:
    """Aware timestamps; the application stores UTC (SQLite: naive UTC text)."""
    return sa.DateTime(timezone=True)


def _location_columns(prefix: str) -> list[sa.Column[object]]:
    """The columns of one location (incident: no prefix; reporter: ``reporter_``)."""
    return [
        sa.Column(f"{prefix}lat", sa.Double(), nullable=True),
        sa.Column(f"{prefix}lon", sa.Double(), nullable=True),
        sa.Column(f"{prefix}accuracy_m", sa.Double(), nullable=True),
        sa.Column(f"{prefix}source", sa.String(length=32), nullable=True),
        sa.Column(f"{prefix}captured_at", _timestamp(), nullable=True),
        sa.Column(f"{prefix}address_text", sa.Text(), nullable=True),
        sa.Column(f"{prefix}display_address", sa.Text(), nullable=True),
        sa.Column(f"{prefix}kelurahan_code", sa.String(length=32), nullable=True),
        sa.Column(f"{prefix}kelurahan_name", sa.String(length=128), nullable=True),
        sa.Column(f"{prefix}kecamatan_code", sa.String(length=32), nullable=True),
        sa.Column(f"{prefix}kecamatan_name", sa.String(length=128), nullable=True),
        sa.Column(f"{prefix}area_inside", sa.Boolean(), nullable=True),
        sa.Column(f"{prefix}area_distance_m", sa.Double(), nullable=True),
        sa.Column(f"{prefix}confidence", sa.Double(), nullable=True),
        sa.Column(f"{prefix}live_until", _timestamp(), nullable=True),
    ]


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "citizens",
        sa.Column("id", _id(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("phone_e164", sa.String(length=20), nullable=True),
        sa.Column("phone_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("language", sa.String(length=32), nullable=False),
        sa.Column("strikes", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("blocked_bot", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_kelurahan_code", sa.String(length=32), nullable=True),
        sa.Column("subscribed", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", _timestamp(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", _timestamp(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizens")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_citizens_telegram_id")),
    )

    op.create_table(
        "tickets",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=True),
        sa.Column("citizen_id", _id(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("category_group", sa.String(length=32), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=32), nullable=False),
        sa.Column("caller_name", sa.Text(), nullable=True),
        sa.Column("caller_phone_e164", sa.String(length=20), nullable=True),
        sa.Column("caller_phone_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("persons_affected", sa.Text(), nullable=True),
        sa.Column("silent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("location_elsewhere", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("location_note", sa.Text(), nullable=True),
        sa.Column("unresolved_address", sa.Text(), nullable=True),
        sa.Column("reviewed", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_location_columns(""),
        *_location_columns("reporter_"),
        sa.Column("pending_location", sa.JSON(), nullable=True),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("created_at", _timestamp(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", _timestamp(), server_default=sa.func.now(), nullable=False),
        sa.Column("submitted_at", _timestamp(), nullable=True),
        sa.Column("closed_at", _timestamp(), nullable=True),
        sa.Column("live_notified_at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_tickets_citizen_id_citizens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("ref", name=op.f("uq_tickets_ref")),
    )
    op.create_index("ix_tickets_citizen_id_status", "tickets", ["citizen_id", "status"])
    op.create_index("ix_tickets_status_updated_at", "tickets", ["status", "updated_at"])
    # At most one draft per citizen, even when two updates race to start one.
    op.create_index(
        "uq_tickets_citizen_id_draft",
        "tickets",
        ["citizen_id"],
        unique=True,
        sqlite_where=sa.text("status = 'draft'"),
        postgresql_where=sa.text("status = 'draft'"),
    )

    op.create_table(
        "ticket_events",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ticket_id", _id(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_events_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    op.create_index("ix_ticket_events_ticket_id_at", "ticket_events", ["ticket_id", "at"])

    op.create_table(
        "messages",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ticket_id", _id(), nullable=False),
        sa.Column("citizen_id", _id(), nullable=False),
        sa.Column("direction", sa.String(length=32), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("file_id", sa.Text(), nullable=True),
        sa.Column("telegram_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_messages_citizen_id_citizens")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_messages_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index("ix_messages_ticket_id_at", "messages", ["ticket_id", "at"])
    op.create_index(
        "ix_messages_citizen_id_direction_at", "messages", ["citizen_id", "direction", "at"]
    )

    op.create_table(
        "outbox",
        sa.Column("id", _id(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("ticket_id", _id(), nullable=True),
        sa.Column("lane", sa.String(length=32), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("next_attempt_at", _timestamp(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent_at", _timestamp(), nullable=True),
        sa.Column("failed_at", _timestamp(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_outbox_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_sent_at_failed_at_next_attempt_at",
        "outbox",
        ["sent_at", "failed_at", "next_attempt_at"],
    )

    op.create_table(
        "ref_counters",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_ref_counters")),
    )

    op.create_table(
        "geocode_cache",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=False),
        sa.Column("created_at", _timestamp(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_geocode_cache")),
    )


def downgrade() -> None:
    """Drop the tables (and every row in them)."""
    op.drop_table("geocode_cache")
    op.drop_table("ref_counters")
    op.drop_index("ix_outbox_sent_at_failed_at_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_messages_citizen_id_direction_at", table_name="messages")
    op.drop_index("ix_messages_ticket_id_at", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_ticket_events_ticket_id_at", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("uq_tickets_citizen_id_draft", table_name="tickets")
    op.drop_index("ix_tickets_status_updated_at", table_name="tickets")
    op.drop_index("ix_tickets_citizen_id_status", table_name="tickets")
    op.drop_table("tickets")
    op.drop_table("citizens")
