"""Log output: human lines by default, one JSON object per line with
`LEADSTREAM_LOG_FORMAT=json` (for a log pipeline: Loki, Cloud Logging, ELK).

A JSON line carries the context of what it is about, where it is known (issue #28): the
webhook/API server binds the request id (`X-Request-ID`, made when the client sent none,
and answered back) and the workspace for the request's task; the worker passes the topic,
partition, offset and workspace of the record a line is about as `extra=`. On one request
id an operator finds every line of a delivery, on one offset the record in the log."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from leadstream.domain.identity import split_key

#: the fields a line may carry besides its message, in this order
CONTEXT_FIELDS = ("request_id", "workspace", "topic", "partition", "offset", "stage")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: the context of the current task (asyncio copies it into the tasks a task starts)
LOG_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("leadstream_log_context",
                                                        default=_EMPTY)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside carries `fields` (None values are left out)."""
    token = LOG_CONTEXT.set({**LOG_CONTEXT.get(),
                             **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        LOG_CONTEXT.reset(token)


def annotate(**fields: Any) -> None:
    """Add `fields` to the innermost `log_context` (a request's, once the server knows its
    workspace); outside one, nothing."""
    bound = LOG_CONTEXT.get()
    if isinstance(bound, dict):
        bound.update({k: v for k, v in fields.items() if v is not None})


def record_context(topic: str, partition: int, offset: int | None = None,
                   key: bytes | None = None, **more: Any) -> dict[str, Any]:
    """`extra=` for a line about one record: where it is in the log, and its workspace (the
    part of a lead key before its first ':')."""
    out: dict[str, Any] = {"topic": topic, "partition": partition, **more}
    if offset is not None:
        out["offset"] = offset
    if key:
        workspace, identity = split_key(key.decode(errors="replace"))
        if workspace and identity:  # a lead key, not a bare id
            out["workspace"] = workspace
    return out


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "process"}`, the context fields known (the task's,
    then the line's own `extra=`), and `exc` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(), "process": record.process,
        }
        bound = LOG_CONTEXT.get()
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, bound.get(field))
            if value is not None:
                out[field] = value
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
