"""The worker's Faust tables, declared on an app made from settings (no module-level app).

* `lead_state`   lead_key -> {"lead": LeadState, "offsets": {"<topic>:<partition>": offset},
                              "recent": [event ids], "last_status": StatusChange | None}
* `message_state` "<lead_key>|<wamid>" -> MessageState
* `daily_windows` "<lead_key>|<YYYY-MM-DD>" -> DayAggregate (agents.daily)

All are written from events of the lead's partition, so a message's state lives with its lead.
Keys and values are bytes we encode ourselves (orjson), so what is in the changelog is exactly
what the rules produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadstream.config import Settings


@dataclass(frozen=True)
class Tables:
    lead_state: Any
    message_state: Any
    daily_windows: Any

    def by_name(self) -> dict[str, Any]:
        """The names the batch runner writes back under."""
        return {"leads": self.lead_state, "messages": self.message_state,
                "daily": self.daily_windows}


def store_options(settings: Settings) -> dict[str, Any] | None:
    """RocksDB's memory per table partition (`LEADSTREAM_ROCKSDB_*`); a new dict per table
    (Faust pops keys from it)."""
    if not settings.table_store.startswith("rocksdb"):
        return None
    out: dict[str, Any] = {}
    if settings.rocksdb_write_buffer_mb:
        out.update(write_buffer_size=settings.rocksdb_write_buffer_mb * 1024 * 1024,
                   max_write_buffer_number=2)
    if settings.rocksdb_block_cache_mb:
        out.update(block_cache_size=settings.rocksdb_block_cache_mb * 1024 * 1024,
                   block_cache_compressed_size=settings.rocksdb_block_cache_mb * 1024 * 1024)
    return out or None


def define_tables(app: Any, settings: Settings) -> Tables:
    """Declare the three tables on `app`; Faust co-partitions them with the source topics."""
    #: changelogs are compacted by Faust; ours also get the cluster's durability floor
    changelog = {"min.insync.replicas": str(settings.min_insync)}

    def table(name: str, help: str) -> Any:
        return app.Table(
            name, default=None, partitions=settings.topic_partitions,
            key_type=bytes, value_type=bytes,  # bytes -> Faust's `raw` codec for the changelog
            extra_topic_configs=changelog, help=help, options=store_options(settings),
        )

    return Tables(
        lead_state=table("lead-state", "per-lead state with the source offsets already applied"),
        message_state=table("message-state", "per-message state (wamid) for de-duplication "
                                             "and delivery status"),
        daily_windows=table("daily-windows", "per lead-day activity aggregate (agents.daily)"),
    )
