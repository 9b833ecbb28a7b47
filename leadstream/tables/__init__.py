"""Faust tables: per-lead state. Keys and values are bytes we encode ourselves (orjson), so
what is in the changelog is exactly what the rules produced.

* `lead_state`   lead_key -> {"lead": LeadState, "offsets": {"<topic>:<partition>": offset},
                              "recent": [event ids], "last_status": StatusChange | None}
* `message_state` "<lead_key>|<wamid>" -> MessageState

Both are written from events of the lead's partition, so a message's state lives with its lead.
"""

from __future__ import annotations

import faust

from leadstream.app import app, settings

RAW: faust.Schema = faust.Schema(
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)

lead_state = app.Table(
    "lead-state", default=None, partitions=settings.topic_partitions,
    schema=RAW,
    help="per-lead state with the source offsets already applied",
)
message_state = app.Table(
    "message-state", default=None, partitions=settings.topic_partitions,
    schema=RAW,
    help="per-message state (wamid) for de-duplication and delivery status",
)
