"""The aiohttp application: webhooks + API + health + Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from leadstream.config import Settings
from leadstream.http import api, keys, webhooks
from leadstream.http.directory import Directory
from leadstream.http.export import ExportGate
from leadstream.http.fleet import MULTIPROC_ENV
from leadstream.http.guard import BodyBudget, GuardedSite, quiet_accept_errors, raise_open_file_limit
from leadstream.http.live import LeadFeed
from leadstream.http.publisher import Publisher
from leadstream.ops.health import ProbeCollector, broker_ready, database_ready
from leadstream.ops.lag import GroupLagCollector
from leadstream.ops.logs import log_context
from leadstream.streams.topics import TopicNames
from leadstream.summarize.digest import Digests

log = logging.getLogger(__name__)

REQUESTS = Counter("leadstream_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram("leadstream_http_request_seconds", "HTTP request latency", ["route"])


#: an `X-Request-ID` taken from the client (or the proxy in front) as it is
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every log line of a request carries its id (JSON logs, ops.logs), which is the
    client's or the proxy's `X-Request-ID` when it looks like one, else a new one; the
    answer names it, so a sender's report finds the server's lines."""
    rid = request.headers.get("X-Request-ID", "")
    if not _REQUEST_ID.fullmatch(rid):
        rid = uuid.uuid4().hex
    with log_context(request_id=rid):
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Request-ID"] = rid
            raise
    resp.headers["X-Request-ID"] = rid
    return resp


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = request.match_info.route.resource.canonical if request.match_info.route.resource \
        else "unmatched"
    with LATENCY.labels(route).time():
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            REQUESTS.labels(route, str(exc.status)).inc()
            raise
    REQUESTS.labels(route, str(resp.status)).inc()
    return resp


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A contract status for what escapes a handler, never a 500: a value Postgres refuses
    is the caller's (422); a database that is down or too slow is unavailable (503)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncpg.DataError as exc:
        return web.json_response({"error": "invalid value", "detail": str(exc)[:200]},
                                 status=422)
    except (TimeoutError, OSError, asyncpg.QueryCanceledError, asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
        log.warning("answering 503 for %s: %r", request.path, exc)
        return web.json_response({"error": "database unavailable, retry later"}, status=503,
                                 headers={"Retry-After": "5"})


#: every answer: no framing (clickjacking), no type sniffing, and a page that runs only its
#: own script and talks only to its own origin
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'"),
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)


#: seconds a Postgres command of the API may take
API_COMMAND_TIMEOUT = 10.0


async def _connect_pool(dsn: str, attempts: int = 50) -> asyncpg.Pool:
    for i in range(attempts):
        try:
            # custom plans: asyncpg prepares every query, and after five runs Postgres may
            # switch to a generic plan that cannot see the `q` pattern, so the trigram index
            # is skipped for a scan of the whole workspace (p99 114 ms at 100k leads vs ~10 ms
            # planned per call; bench/api_list.py). Planning a list query costs ~0.2 ms.
            # command_timeout: a stuck query answers 503 instead of holding the request
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=10, command_timeout=API_COMMAND_TIMEOUT,
                server_settings={"plan_cache_mode": "force_custom_plan",
                                 "statement_timeout": str(int(API_COMMAND_TIMEOUT * 1000))})
            return pool
        except (OSError, asyncpg.PostgresError) as exc:
            if i == attempts - 1:
                raise
            log.warning("Postgres not reachable (%s); retrying", exc)
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


def make_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[request_id_middleware, metrics_middleware, errors_middleware])
    app.on_response_prepare.append(_security_headers)
    app[keys.MAX_BODY] = settings.max_body_bytes
    app[keys.BODY_BUDGET] = BodyBudget(settings.http_max_inflight_bytes)
    app[keys.BODY_TIMEOUT] = settings.http_body_timeout
    app[keys.TOPICS] = TopicNames.from_settings(settings)
    if settings.group_lag_seconds:
        app[keys.GROUP_LAG] = GroupLagCollector(settings, every=settings.group_lag_seconds)

    async def context(app: web.Application) -> AsyncIterator[None]:
        pool = await _connect_pool(settings.read_dsn)  # reads: the standby when there is one
        # the primary: the few writes the API makes itself, and the live feed (a standby
        # relays no notifications)
        primary = pool if settings.read_dsn == settings.dsn else await _connect_pool(settings.dsn)
        directory = Directory(pool)
        await directory.refresh(force=True)
        publisher = Publisher(settings)
        await publisher.start()
        # (a refresh replaces the directory's dict: look it up at each use)
        feed = LeadFeed(settings.dsn, primary, lambda ws: directory.inbox_urls.get(ws))  # noqa: PLW0108
        await feed.start()
        app[keys.POOL] = pool
        app[keys.WRITE_POOL] = primary
        app[keys.FEED] = feed
        app[keys.DIGESTS] = Digests(pool, settings.timezone, covers=settings.digest_day)
        app[keys.TIMEZONE] = settings.timezone
        app[keys.CLOCK] = keys.Clock()
        app[keys.EXPORTS] = ExportGate(settings.read_dsn)
        app[keys.DIRECTORY] = directory
        app[keys.PUBLISHER] = publisher
        refresher = asyncio.create_task(directory.run())
        yield
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await publisher.stop()
        if primary is not pool:
            await primary.close()
        await pool.close()

    async def close_streams(app: web.Application) -> None:
        """Open event streams end before the server waits for its handlers."""
        if keys.FEED in app:
            await app[keys.FEED].stop()

    app.cleanup_ctx.append(context)
    app.on_shutdown.append(close_streams)
    webhooks.add_routes(app)
    api.add_routes(app)

    async def health(request: web.Request) -> web.Response:
        """Alive: the process serves requests (a load balancer's liveness probe); which
        process answered (one of `webhook --processes N`)."""
        return web.json_response({"alive": True, "pid": os.getpid()})

    async def broker_up() -> bool:
        producer = app[keys.PUBLISHER].producer if keys.PUBLISHER in app else None
        return producer is not None and await broker_ready(producer.client)

    async def postgres_up() -> bool:
        return keys.POOL in app and await database_ready(app[keys.POOL])

    async def ready(request: web.Request) -> web.Response:
        """Ready: the broker and the database answer now (contract §5)."""
        broker, database = await asyncio.gather(broker_up(), postgres_up())
        return web.json_response({"broker": broker, "database": database},
                                 status=200 if broker and database else 503)

    probes = ProbeCollector({"broker": broker_up, "postgres": postgres_up})
    process_registry = _process_registry()
    # this app's own registry: several apps share a test process's default one
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(probes)
    if keys.GROUP_LAG in app:
        scraped.register(app[keys.GROUP_LAG])

    async def metrics(request: web.Request) -> web.Response:
        """The process's figures, its probes of the broker and Postgres, and every consumer
        group's lag read from the broker."""
        refreshing = [probes.refresh()]
        if keys.GROUP_LAG in request.app:
            refreshing.append(request.app[keys.GROUP_LAG].refresh())
        await asyncio.gather(*refreshing)
        body = generate_latest(process_registry) + generate_latest(scraped)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    return app


def _process_registry() -> CollectorRegistry:
    """The module-level figures (requests, latency, refusals): this process's, or, in one of
    `webhook --processes N` (PROMETHEUS_MULTIPROC_DIR set), summed over the fleet's
    processes, whichever of them a scrape reaches (no `process_*` figures then)."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


async def start_site(settings: Settings, app: web.Application,
                     port: int | None = None) -> tuple[web.AppRunner, GuardedSite]:
    """The app served with its connection hygiene (http.guard): the idle and header timeout,
    the connection cap, a raised open-file limit, and accept errors logged once a minute."""
    raise_open_file_limit()
    quiet_accept_errors(asyncio.get_running_loop())
    # after an answer to a body that did not arrive (408) or was too large (413), the rest of
    # it is read and dropped for 2 s at most (aiohttp: 10 s), then the connection is closed
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.http_idle_timeout,
                           lingering_time=2.0)
    await runner.setup()
    site = GuardedSite(runner, settings.http_host, settings.http_port if port is None else port,
                       backlog=1024, max_connections=settings.http_max_connections,
                       reuse_port=settings.http_reuse_port or None)
    await site.start()
    return runner, site


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the server until `stop` is set."""
    runner, _ = await start_site(settings, make_app(settings))
    log.info("webhook/API server on http://%s:%s", settings.http_host, settings.http_port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
