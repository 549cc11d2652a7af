"""Advisories: citizens' subscriptions with consent time, advisories, their deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Hand-checked against ``storage/models.py`` (``test_models_match_migrations_when_upgraded_to_head``).
Self-contained: a migration never imports the models it predates.

``citizens.subscribed`` (from 0001) defaulted to true although nobody had consented: it now
defaults to false and every existing citizen starts unsubscribed (consent is asked for).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL; ``INTEGER PRIMARY KEY`` (the rowid) on SQLite."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp() -> sa.DateTime:
    """Aware timestamps; the application stores UTC (SQLite: naive UTC text)."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add subscriptions, advisories and their deliveries."""
    with op.batch_alter_table("citizens") as batch:
        batch.alter_column(
            "subscribed", existing_type=sa.Boolean(), server_default=sa.false(),
            existing_nullable=False,
        )  # fmt: skip
        batch.add_column(
            sa.Column("subscription_kecamatan_code", sa.String(length=32), nullable=True)
        )
        batch.add_column(sa.Column("subscribed_at", _timestamp(), nullable=True))
    op.execute(sa.text("UPDATE citizens SET subscribed = false"))

    op.create_table(
        "advisories",
        sa.Column("id", _id(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("photo_file_id", sa.Text(), nullable=True),
        sa.Column("target", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("recipients", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("confirmed_by", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("progress_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("progress_message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisories")),
    )
    op.create_index(
        "ix_advisories_status_created_at", "advisories", ["status", "created_at"]
    )
    op.create_table(
        "advisory_deliveries",
        sa.Column("id", _id(), nullable=False),
        sa.Column("advisory_id", _id(), nullable=False),
        sa.Column("citizen_id", _id(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("at", _timestamp(), nullable=True),
        sa.ForeignKeyConstraint(
            ["advisory_id"], ["advisories.id"],
            name=op.f("fk_advisory_deliveries_advisory_id_advisories"),
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"],
            name=op.f("fk_advisory_deliveries_citizen_id_citizens"),
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisory_deliveries")),
        sa.UniqueConstraint(
            "advisory_id", "citizen_id", name=op.f("uq_advisory_deliveries_advisory_id_citizen_id")
        ),
    )
    op.create_index(
        "ix_advisory_deliveries_advisory_id_outcome",
        "advisory_deliveries",
        ["advisory_id", "outcome"],
    )


def downgrade() -> None:
    """Drop advisories and subscriptions (and their data)."""
    op.drop_index("ix_advisory_deliveries_advisory_id_outcome", table_name="advisory_deliveries")
    op.drop_table("advisory_deliveries")
    op.drop_index("ix_advisories_status_created_at", table_name="advisories")
    op.drop_table("advisories")
    with op.batch_alter_table("citizens") as batch:
        batch.drop_column("subscribed_at")
        batch.drop_column("subscription_kecamatan_code")
        batch.alter_column(
            "subscribed", existing_type=sa.Boolean(), server_default=sa.true(),
            existing_nullable=False,
        )  # fmt: skip
