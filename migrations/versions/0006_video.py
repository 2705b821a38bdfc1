"""video: keyframes are items of their video, with the frame's time (text_items.at_s)

Revision ID: 0006_video
Revises: 0005
Create Date: 2026-12-06 04:00:00

Written beside 0005 (remembered failures) on another branch, and re-chained after it when both met on main.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_video"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("text_items") as batch:
        batch.add_column(sa.Column("at_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("text_items") as batch:
        batch.drop_column("at_s")
