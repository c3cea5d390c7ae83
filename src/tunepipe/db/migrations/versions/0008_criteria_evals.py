"""criteria (versions, alignment sets and judgements), evaluations (entries, shared model outputs,
judgements), criteria results on logged calls and the judged call a judge's call belongs to

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alignment_rows",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("criterion_name", sa.String(length=100), nullable=False),
        sa.Column("messages", sa.Text(), nullable=False),
        sa.Column("tools", sa.Text(), nullable=True),
        sa.Column("tool_choice", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("judgement", sa.String(length=8), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("dataset_entry_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alignment_rows_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alignment_rows")),
    )
    with op.batch_alter_table("alignment_rows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alignment_rows_project_id_criterion_name_created_at"),
            ["project_id", "criterion_name", "created_at"],
            unique=False,
        )

    op.create_table(
        "criteria",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("judge_model", sa.String(length=300), nullable=False),
        sa.Column("variables", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_criteria_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_criteria")),
        sa.UniqueConstraint(
            "project_id", "name", "version", name=op.f("uq_criteria_project_id_name_version")
        ),
    )
    op.create_table(
        "model_outputs",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_model_outputs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", "model", "input_hash", name=op.f("pk_model_outputs")),
    )
    op.create_table(
        "alignment_judgements",
        sa.Column("row_id", sa.String(length=36), nullable=False),
        sa.Column("criterion_id", sa.String(length=36), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["criterion_id"],
            ["criteria.id"],
            name=op.f("fk_alignment_judgements_criterion_id_criteria"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["row_id"],
            ["alignment_rows.id"],
            name=op.f("fk_alignment_judgements_row_id_alignment_rows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("row_id", "criterion_id", name=op.f("pk_alignment_judgements")),
    )
    op.create_table(
        "evals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("judge_model", sa.String(length=300), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("grader", sa.Text(), nullable=True),
        sa.Column("num_entries", sa.Integer(), nullable=True),
        sa.Column("both_orders", sa.Boolean(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_evals_dataset_id_datasets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_evals_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evals")),
    )
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evals_project_id_created_at"), ["project_id", "created_at"], unique=False
        )

    op.create_table(
        "logged_call_criteria",
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("choice_index", sa.Integer(), nullable=False),
        sa.Column("criterion", sa.String(length=100), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["logged_calls.id"],
            name=op.f("fk_logged_call_criteria_call_id_logged_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", "choice_index", "criterion", name=op.f("pk_logged_call_criteria")),
    )
    with op.batch_alter_table("logged_call_criteria", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_logged_call_criteria_project_id_criterion_outcome"),
            ["project_id", "criterion", "outcome"],
            unique=False,
        )

    op.create_table(
        "eval_entries",
        sa.Column("eval_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_id"], ["evals.id"], name=op.f("fk_eval_entries_eval_id_evals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("eval_id", "entry_id", name=op.f("pk_eval_entries")),
    )
    op.create_table(
        "eval_judgements",
        sa.Column("eval_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("opponent", sa.String(length=300), nullable=False),
        sa.Column("criterion", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_id"], ["evals.id"], name=op.f("fk_eval_judgements_eval_id_evals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "eval_id", "entry_id", "model", "opponent", "criterion", name=op.f("pk_eval_judgements")
        ),
    )
    with op.batch_alter_table("logged_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_logged_calls_parent_id"), ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("logged_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_calls_parent_id"))
        batch_op.drop_column("parent_id")

    op.drop_table("eval_judgements")
    op.drop_table("eval_entries")
    with op.batch_alter_table("logged_call_criteria", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_call_criteria_project_id_criterion_outcome"))

    op.drop_table("logged_call_criteria")
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evals_project_id_created_at"))

    op.drop_table("evals")
    op.drop_table("alignment_judgements")
    op.drop_table("model_outputs")
    op.drop_table("criteria")
    with op.batch_alter_table("alignment_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alignment_rows_project_id_criterion_name_created_at"))

    op.drop_table("alignment_rows")
