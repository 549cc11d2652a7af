"""TEMP placeholder for the outbox branch's migration 0002 (outbox columns, chat_aliases).

Revision ID: 0002
Revises: 0001

A no-op so that 0003 (the console) runs on this branch; dropped when the outbox branch's
real 0002 is merged.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing (placeholder)."""


def downgrade() -> None:
    """Nothing (placeholder)."""
