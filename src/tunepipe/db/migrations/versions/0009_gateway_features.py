"""gateway features: the response cache, fallback chains, mixture-of-agents configurations, rate
limits on keys, and the answering model and attempts of a logged call

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fallback_chains",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("fallbacks", sa.Text(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_fallback_chains_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "model", name=op.f("pk_fallback_chains")),
    )
    op.create_table(
        "moa_configs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_moa_configs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moa_configs")),
        sa.UniqueConstraint("project_id", "slug", name=op.f("uq_moa_configs_project_id_slug")),
    )
    op.create_table(
        "response_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_response_cache_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_response_cache")),
    )
    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_response_cache_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_response_cache_project_id_model"), ["project_id", "model"], unique=False
        )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))

    with op.batch_alter_table("logged_call_bodies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.LargeBinary(), nullable=True))

    with op.batch_alter_table("logged_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_by", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logged_calls", schema=None) as batch_op:
        batch_op.drop_column("attempts")
        batch_op.drop_column("answered_by")

    with op.batch_alter_table("logged_call_bodies", schema=None) as batch_op:
        batch_op.drop_column("attempts")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_concurrency")
        batch_op.drop_column("tpm")
        batch_op.drop_column("rpm")

    with op.batch_alter_table("response_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_cache_project_id_model"))
        batch_op.drop_index(batch_op.f("ix_response_cache_expires_at"))

    op.drop_table("response_cache")
    op.drop_table("moa_configs")
    op.drop_table("fallback_chains")
