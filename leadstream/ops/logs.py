"""Log output: human lines by default, one JSON object per line with
`LEADSTREAM_LOG_FORMAT=json` (for a log pipeline: Loki, Cloud Logging, ELK)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "process"}` plus `exc` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(), "process": record.process,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def dict_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for JSON lines on stderr (also Faust's worker's)."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "level": level.upper()}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
