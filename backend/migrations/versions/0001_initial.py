"""The schema before migrations: candles, alert_rules (one webhook_url), alert_events.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candles",
        sa.Column("symbol", sa.String(20), primary_key=True),
        sa.Column("interval", sa.String(4), primary_key=True),
        sa.Column("open_time", sa.BigInteger, primary_key=True),
        sa.Column("close_time", sa.BigInteger, nullable=False),
        sa.Column("open", sa.Double, nullable=False),
        sa.Column("high", sa.Double, nullable=False),
        sa.Column("low", sa.Double, nullable=False),
        sa.Column("close", sa.Double, nullable=False),
        sa.Column("volume", sa.Double, nullable=False),
        sa.Column("quote_volume", sa.Double, nullable=False),
        sa.Column("trades", sa.BigInteger, nullable=False),
        sa.Column("taker_buy_volume", sa.Double, nullable=False),
        sa.Column("taker_buy_quote_volume", sa.Double, nullable=False),
        sa.Column("event_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("threshold", sa.JSON),
        sa.Column("frequency", sa.String(12), nullable=False),
        sa.Column("cooldown_s", sa.Integer, nullable=False),
        sa.Column("lookback", sa.Integer),
        sa.Column("factor", sa.Double),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("webhook_url", sa.Text),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("threshold", sa.JSON),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("fired_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alert_events_rule", "alert_events", ["rule_id", "id"])
    op.create_index("ix_alert_events_symbol", "alert_events", ["symbol", "id"])


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.drop_table("candles")
