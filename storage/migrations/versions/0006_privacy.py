"""Personal data (UU PDP): when a ticket was anonymised, when a citizen asked to be erased.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Hand-checked against ``storage/models.py`` (``test_models_match_migrations_when_upgraded_to_head``).
Self-contained: a migration never imports the models it predates.

``tickets.anonymised_at``: the personal fields of the ticket, its relay log and its finished
outbox rows were removed then (by the retention purge or an erasure). ``citizens.erase_requested_at``:
the citizen asked for erasure while a ticket was still open (it is anonymised at its close);
``citizens.erased_at``: the citizen record holds no personal data any more.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    """Aware timestamps; the application stores UTC (SQLite: naive UTC text)."""
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the anonymisation and erasure markers and the purge's index."""
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("anonymised_at", _timestamp(), nullable=True))
    op.create_index("ix_tickets_status_closed_at", "tickets", ["status", "closed_at"])
    with op.batch_alter_table("citizens") as batch:
        batch.add_column(sa.Column("erase_requested_at", _timestamp(), nullable=True))
        batch.add_column(sa.Column("erased_at", _timestamp(), nullable=True))


def downgrade() -> None:
    """Drop the markers (anonymised data stays anonymised)."""
    with op.batch_alter_table("citizens") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("erase_requested_at")
    op.drop_index("ix_tickets_status_closed_at", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("anonymised_at")
