"""datasets and their entries

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("train_ratio", sa.Float(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
    )
    op.create_index(
        op.f("ix_datasets_project_id_created_at"), "datasets", ["project_id", "created_at"], unique=False
    )
    op.create_table(
        "dataset_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("messages", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("tools", sa.Text(), nullable=True),
        sa.Column("tool_choice", sa.Text(), nullable=True),
        sa.Column("response_format", sa.Text(), nullable=True),
        sa.Column("rejected_message", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("original_output", sa.Text(), nullable=True),
        sa.Column("provenance", sa.String(length=24), nullable=False),
        sa.Column("logged_call_id", sa.String(length=36), nullable=True),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_entries_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_entries")),
    )
    for cols in (["dataset_id", "created_at"], ["dataset_id", "split"], ["dataset_id", "input_hash"]):
        op.create_index(op.f(f"ix_dataset_entries_{'_'.join(cols)}"), "dataset_entries", cols, unique=False)


def downgrade() -> None:
    op.drop_table("dataset_entries")
    op.drop_index(op.f("ix_datasets_project_id_created_at"), table_name="datasets")
    op.drop_table("datasets")
