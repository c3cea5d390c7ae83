"""ecosystem: the request id and API endpoint of a logged call, and stored Responses API objects

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_stored_responses_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
    )
    with op.batch_alter_table("stored_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stored_responses_project_id_created_at"),
            ["project_id", "created_at"],
            unique=False,
        )

    with op.batch_alter_table("logged_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("endpoint", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logged_calls", schema=None) as batch_op:
        batch_op.drop_column("endpoint")
        batch_op.drop_column("request_id")

    with op.batch_alter_table("stored_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stored_responses_project_id_created_at"))

    op.drop_table("stored_responses")
