"""Alerts: rules watch a value and deliver to a list of targets; events record the candle and deliveries.

alert_rules: + watch, + targets (the old webhook_url becomes the first target), + last_fired_at, + fire_count,
- webhook_url. alert_events: + open_time, + deliveries.

Revision ID: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.add_column(sa.Column("watch", sa.String(16), nullable=False, server_default="close"))
        batch.add_column(sa.Column("targets", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("last_fired_at", sa.BigInteger))
        batch.add_column(sa.Column("fire_count", sa.Integer, nullable=False, server_default="0"))
    conn = op.get_bind()
    rules = sa.table("alert_rules", sa.column("id"), sa.column("webhook_url"), sa.column("targets", sa.JSON))
    for rule_id, url in conn.execute(sa.select(rules.c.id, rules.c.webhook_url)).all():
        if url:
            conn.execute(rules.update().where(rules.c.id == rule_id).values(targets=[url]))
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("webhook_url")
    with op.batch_alter_table("alert_events") as batch:
        batch.add_column(sa.Column("open_time", sa.BigInteger))
        batch.add_column(sa.Column("deliveries", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("alert_events") as batch:
        batch.drop_column("deliveries")
        batch.drop_column("open_time")
    with op.batch_alter_table("alert_rules") as batch:
        batch.add_column(sa.Column("webhook_url", sa.Text))
    conn = op.get_bind()
    rules = sa.table("alert_rules", sa.column("id"), sa.column("webhook_url"), sa.column("targets", sa.JSON))
    for rule_id, targets in conn.execute(sa.select(rules.c.id, rules.c.targets)).all():
        targets = json.loads(targets) if isinstance(targets, str) else targets
        if targets:
            conn.execute(rules.update().where(rules.c.id == rule_id).values(webhook_url=targets[0]))
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_column("fire_count")
        batch.drop_column("last_fired_at")
        batch.drop_column("targets")
        batch.drop_column("watch")
