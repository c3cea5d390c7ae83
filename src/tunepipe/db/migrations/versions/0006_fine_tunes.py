"""fine-tunes: models, their training rows, test outputs, artifacts; persisted jobs

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_jobs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_status_created_at"), ["status", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "fine_tunes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("base_model", sa.String(length=300), nullable=False),
        sa.Column("root_model", sa.String(length=300), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("default_temperature", sa.Float(), nullable=True),
        sa.Column("training_config", sa.Text(), nullable=False),
        sa.Column("hyperparameters", sa.Text(), nullable=False),
        sa.Column("pruning_rule_ids", sa.Text(), nullable=False),
        sa.Column("progress", sa.Text(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("train_rows", sa.Integer(), nullable=False),
        sa.Column("test_rows", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("training_started_at", sa.BigInteger(), nullable=True),
        sa.Column("training_finished_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_fine_tunes_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_fine_tunes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_tunes")),
        sa.UniqueConstraint("slug", name=op.f("uq_fine_tunes_slug")),
    )
    with op.batch_alter_table("fine_tunes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fine_tunes_project_id_created_at"), ["project_id", "created_at"], unique=False
        )

    op.create_table(
        "fine_tune_artifacts",
        sa.Column("fine_tune_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_tune_id"],
            ["fine_tunes.id"],
            name=op.f("fk_fine_tune_artifacts_fine_tune_id_fine_tunes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("fine_tune_id", "name", name=op.f("pk_fine_tune_artifacts")),
    )
    op.create_table(
        "fine_tune_entries",
        sa.Column("fine_tune_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("row", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_tune_id"],
            ["fine_tunes.id"],
            name=op.f("fk_fine_tune_entries_fine_tune_id_fine_tunes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("fine_tune_id", "entry_id", name=op.f("pk_fine_tune_entries")),
    )
    with op.batch_alter_table("fine_tune_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fine_tune_entries_fine_tune_id_split"), ["fine_tune_id", "split"], unique=False
        )

    op.create_table(
        "fine_tune_test_outputs",
        sa.Column("fine_tune_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("exact_match", sa.Boolean(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fine_tune_id"],
            ["fine_tunes.id"],
            name=op.f("fk_fine_tune_test_outputs_fine_tune_id_fine_tunes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("fine_tune_id", "entry_id", name=op.f("pk_fine_tune_test_outputs")),
    )


def downgrade() -> None:
    op.drop_table("fine_tune_test_outputs")
    with op.batch_alter_table("fine_tune_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fine_tune_entries_fine_tune_id_split"))

    op.drop_table("fine_tune_entries")
    op.drop_table("fine_tune_artifacts")
    with op.batch_alter_table("fine_tunes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fine_tunes_project_id_created_at"))

    op.drop_table("fine_tunes")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_subject_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_status_created_at"))

    op.drop_table("jobs")
