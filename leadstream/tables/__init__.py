"""Faust tables: per-lead state. Keys and values are bytes we encode ourselves (orjson), so
what is in the changelog is exactly what the rules produced.

* `lead_state`   lead_key -> {"lead": LeadState, "offsets": {"<topic>:<partition>": offset},
                              "recent": [event ids], "last_status": StatusChange | None}
* `message_state` "<lead_key>|<wamid>" -> MessageState
* `daily_windows` "<lead_key>|<YYYY-MM-DD>" -> DayAggregate (agents.daily)

Both are written from events of the lead's partition, so a message's state lives with its lead.
"""

from __future__ import annotations

from leadstream.app import app, settings

#: changelogs are compacted by Faust; ours also get the cluster's durability floor
_CHANGELOG = {"min.insync.replicas": str(settings.min_insync)}

lead_state = app.Table(
    "lead-state", default=None, partitions=settings.topic_partitions,
    key_type=bytes, value_type=bytes,  # bytes -> Faust's `raw` codec for the changelog
    extra_topic_configs=_CHANGELOG,
    help="per-lead state with the source offsets already applied",
)
daily_windows = app.Table(
    "daily-windows", default=None, partitions=settings.topic_partitions,
    key_type=bytes, value_type=bytes,  # bytes -> Faust's `raw` codec for the changelog
    extra_topic_configs=_CHANGELOG,
    help="per lead-day activity aggregate (see agents.daily)",
)
message_state = app.Table(
    "message-state", default=None, partitions=settings.topic_partitions,
    key_type=bytes, value_type=bytes,  # bytes -> Faust's `raw` codec for the changelog
    extra_topic_configs=_CHANGELOG,
    help="per-message state (wamid) for de-duplication and delivery status",
)
