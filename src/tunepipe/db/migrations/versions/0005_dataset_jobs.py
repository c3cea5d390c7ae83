"""dataset jobs: imports from request logs and relabeling, with their progress

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_jobs_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_jobs")),
    )
    op.create_index(
        op.f("ix_dataset_jobs_dataset_id_created_at"),
        "dataset_jobs",
        ["dataset_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_dataset_jobs_status"), "dataset_jobs", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_jobs_status"), table_name="dataset_jobs")
    op.drop_index(op.f("ix_dataset_jobs_dataset_id_created_at"), table_name="dataset_jobs")
    op.drop_table("dataset_jobs")
