"""one job system: dataset jobs become rows of `jobs` (params, progress, result), entries record
the import that made them, a fine-tune's progress is its job's, and a feed of settings changes

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INTERRUPTED = "interrupted by the upgrade to the persistent job queue"


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("progress", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("result", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_project_id_created_at"), ["project_id", "created_at"])

    conn = op.get_bind()
    jobs = sa.table(
        "jobs",
        *(
            sa.column(name)
            for name in [
                "id",
                "kind",
                "project_id",
                "subject_id",
                "status",
                "attempts",
                "max_attempts",
                "worker_id",
                "heartbeat_at",
                "cancel_requested",
                "error_message",
                "params",
                "progress",
                "result",
                "created_at",
                "updated_at",
                "started_at",
                "finished_at",
            ]
        ),
    )
    old = sa.table(
        "dataset_jobs",
        *(
            sa.column(name)
            for name in [
                "id",
                "project_id",
                "dataset_id",
                "kind",
                "status",
                "done",
                "total",
                "created",
                "skipped",
                "error_message",
                "params",
                "created_at",
                "updated_at",
            ]
        ),
    )
    for row in conn.execute(sa.select(old)).all():
        counters = {"done": row.done, "total": row.total, "created": row.created, "skipped": row.skipped}
        unfinished = row.status in ("QUEUED", "RUNNING")
        status = "ERROR" if unfinished else row.status
        conn.execute(
            sa.insert(jobs).values(
                id=row.id,
                kind=row.kind,
                project_id=row.project_id,
                subject_id=row.dataset_id,
                status=status,
                attempts=1,
                max_attempts=1,
                worker_id=None,
                heartbeat_at=None,
                cancel_requested=False,
                error_message=INTERRUPTED if unfinished else row.error_message,
                params=row.params,
                progress=_dumps({**counters, "stage": "done" if status == "DONE" else "failed"}),
                result=_dumps(counters) if status == "DONE" else None,
                created_at=row.created_at,
                updated_at=row.updated_at,
                started_at=row.created_at,
                finished_at=row.updated_at,
            )
        )
    op.drop_index(op.f("ix_dataset_jobs_status"), table_name="dataset_jobs")
    op.drop_index(op.f("ix_dataset_jobs_dataset_id_created_at"), table_name="dataset_jobs")
    op.drop_table("dataset_jobs")

    # A fine-tune's progress lives on its train job from now on.
    fine_tunes = sa.table("fine_tunes", sa.column("id"), sa.column("progress"))
    for ft in conn.execute(sa.select(fine_tunes).where(fine_tunes.c.progress.is_not(None))).all():
        latest = conn.execute(
            sa.select(jobs.c.id)
            .where(jobs.c.subject_id == ft.id, jobs.c.kind == "train")
            .order_by(jobs.c.created_at.desc())
            .limit(1)
        ).scalar()
        if latest is not None:
            conn.execute(sa.update(jobs).where(jobs.c.id == latest).values(progress=ft.progress))
    with op.batch_alter_table("fine_tunes", schema=None) as batch_op:
        batch_op.drop_column("progress")

    with op.batch_alter_table("dataset_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_dataset_entries_job_id"), ["job_id"])

    op.create_table(
        "config_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_changes")),
    )
    op.create_index(op.f("ix_config_changes_at"), "config_changes", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_config_changes_at"), table_name="config_changes")
    op.drop_table("config_changes")
    with op.batch_alter_table("dataset_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_entries_job_id"))
        batch_op.drop_column("job_id")
    with op.batch_alter_table("fine_tunes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress", sa.Text(), nullable=True))
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
        op.f("ix_dataset_jobs_dataset_id_created_at"), "dataset_jobs", ["dataset_id", "created_at"]
    )
    op.create_index(op.f("ix_dataset_jobs_status"), "dataset_jobs", ["status"])
    op.execute(sa.text("DELETE FROM jobs WHERE kind IN ('import_logs', 'relabel')"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_project_id_created_at"))
        batch_op.drop_column("result")
        batch_op.drop_column("progress")
        batch_op.drop_column("params")
