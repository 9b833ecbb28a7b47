"""What the server's app holds, by key: one place, so the webhook and API handlers (and the
server that fills them in `server.make_app`) share the keys instead of one handler module
reaching into another (issue #26)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from leadstream.http.directory import Directory
from leadstream.http.export import ExportGate
from leadstream.http.guard import BodyBudget
from leadstream.http.live import LeadFeed
from leadstream.http.publisher import Publisher
from leadstream.ops.lag import GroupLagCollector
from leadstream.streams.topics import TopicNames
from leadstream.summarize.digest import Digests

#: numbers and tokens, refreshed in the background
DIRECTORY = web.AppKey("directory", Directory)
#: the producer every request publishes with (acks=all)
PUBLISHER = web.AppKey("publisher", Publisher)
TOPICS = web.AppKey("topics", TopicNames)
#: the largest body taken (LEADSTREAM_MAX_BODY_BYTES)
MAX_BODY = web.AppKey("max_body", int)
#: body bytes being read at once, and how long a body may take (http.guard)
BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
BODY_TIMEOUT = web.AppKey("body_timeout", float)
#: reads (the standby when there is one)
POOL = web.AppKey("pool", asyncpg.Pool)
#: the primary (writes the API makes itself: resolving a dead letter) and the live feed
WRITE_POOL = web.AppKey("write_pool", asyncpg.Pool)
FEED = web.AppKey("feed", LeadFeed)
#: the workspace digest, computed on demand (`summarize.digest`)
DIGESTS = web.AppKey("digests", Digests)
#: the workspaces' timezone (LEADSTREAM_TIMEZONE): what "today" is for tasks and reports
TIMEZONE = web.AppKey("timezone", str)


@dataclass
class Clock:
    """The time the API's task lists and reports are reckoned at: the system's, unless set
    (`fixed`; the browser test moves it to see a task fall overdue)."""

    fixed: datetime | None = None

    def now(self) -> datetime:
        return self.fixed or datetime.now(UTC)


CLOCK = web.AppKey("clock", Clock)
#: CSV exports: their own connections, capped per workspace (http.export)
EXPORTS = web.AppKey("exports", ExportGate)
#: every consumer group's lag, read from the broker when /metrics is scraped (ops.lag)
GROUP_LAG = web.AppKey("group_lag", GroupLagCollector)
