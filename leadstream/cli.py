"""`leadstream` command line (contract §5). `--help` on each command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import click

from leadstream.config import Settings, get_settings


def _logging(level: str, fmt: str = "text") -> None:
    if fmt == "json":
        from logging.config import dictConfig

        from leadstream.ops.logs import dict_config

        dictConfig(dict_config(level))
        return
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_until_signal(main: Any, event_loop: str = "asyncio") -> None:
    """Run `main(stop_event)` with SIGINT/SIGTERM setting the event, on the event loop
    `event_loop` names (`LEADSTREAM_EVENT_LOOP`: `auto` is uvloop where installed)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with asyncio.Runner(loop_factory=_loop_factory(event_loop)) as run:
        run.run(runner())


def _loop_factory(event_loop: str) -> Any:
    """uvloop's loop factory for `uvloop` (and for `auto` where uvloop is installed), else
    None: the standard library's loop."""
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise click.ClickException("LEADSTREAM_EVENT_LOOP=uvloop but uvloop is not "
                                       "installed (pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def _use_event_loop(event_loop: str) -> None:
    """Make every loop this process creates from now on the one `event_loop` names: the
    worker's and the sink's (mode's `Worker` takes the current loop, as Faust's `-L uvloop`
    does through the policy). On uvloop the worker spent 4-8% less CPU per event at 200
    and 1,000 events/s in two pairs, the drain the same (BENCHMARKS.md, session 15)."""
    factory = _loop_factory(event_loop)
    if factory is not None:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@click.group()
@click.version_option(package_name="leadstream", message="leadstream %(version)s")
def main() -> None:
    """leadstream: WhatsApp sales line -> Kafka -> Faust -> Postgres lead database."""


# --------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Replica schema."""


@db.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the replica schema."""
    from leadstream.db.migrate import migrate_url

    applied = _or_exit(lambda: migrate_url(get_settings().dsn))
    click.echo("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


# --------------------------------------------------------------------------- workspace


@main.group()
def workspace() -> None:
    """Workspaces, their WhatsApp numbers and API tokens."""


@workspace.command("add")
@click.option("--id", "workspace_id", required=True, help="workspace id (no ':')")
@click.option("--phone-number-id", default=None, help="WhatsApp phone_number_id")
@click.option("--webhook-secret", default=None, help="secret Kapso/Meta sign webhooks with")
@click.option("--api-token", default=None, help="bearer token for the API (stored hashed)")
@click.option("--role", type=click.Choice(["human", "brain-bot", "sarah-bot"]), default="human")
@click.option("--region", default=None, help="default phone region (ISO), default ID")
@click.option("--verify-token", default=None, help="Meta GET hub.verify_token")
@click.option("--user", default=None,
              help="the person a human token belongs to: recorded as the actor of its changes")
@click.option("--inbox-url", default=None,
              help="the workspace's inbox URL with {conversation_id} (and optionally {phone}),"
                   " for the dashboard's \"Open in Inbox\" link")
@click.option("--move", is_flag=True,
              help="move a number or token that belongs to another workspace to this one")
@click.option("--kapso-api-key", default=None,
              help="the workspace's Kapso API key: the reconciler reads its numbers' messages"
                   " with it (kept like the webhook secrets, listed masked)")
@click.option("--auto-assign", type=click.Choice(["off", "all", "hot"]), default=None,
              help="give new leads an owner in turn among the workspace's people (--user):"
                   " every new lead, only hot ones, or none (the default)")
def workspace_add(workspace_id: str, phone_number_id: str | None, webhook_secret: str | None,
                  api_token: str | None, role: str, region: str | None,
                  verify_token: str | None, user: str | None, inbox_url: str | None,
                  move: bool, kapso_api_key: str | None, auto_assign: str | None) -> None:
    """Register a workspace, a number and/or a token (repeat to add more)."""
    import asyncpg

    from leadstream.db.migrate import migrate
    from leadstream.db.registry import Taken, add_workspace, weak_secret

    for value, what, hint in ((webhook_secret, "a webhook secret", "--webhook-secret"),
                              (api_token, "an API token", "--api-token")):
        problem = weak_secret(value, what)
        if problem:
            raise click.BadParameter(problem, param_hint=hint)

    if ":" in workspace_id:
        raise click.BadParameter("must not contain ':'", param_hint="--id")
    if kapso_api_key is not None and not kapso_api_key.strip():
        raise click.BadParameter("must not be empty", param_hint="--kapso-api-key")
    if phone_number_id and not webhook_secret:
        raise click.BadParameter("--phone-number-id needs --webhook-secret")
    if user and (role != "human" or not api_token):
        raise click.BadParameter("--user names the person of a human --api-token")
    if inbox_url is not None:
        from leadstream.http.inbox import check_pattern

        problem = check_pattern(inbox_url)
        if problem:
            raise click.BadParameter(problem, param_hint="--inbox-url")
    settings = get_settings()

    async def go() -> None:
        conn = await asyncpg.connect(settings.dsn)
        try:
            await migrate(conn)
            await add_workspace(conn, workspace_id=workspace_id, phone_number_id=phone_number_id,
                                webhook_secret=webhook_secret, api_token=api_token, role=role,
                                region=region or settings.default_region,
                                verify_token=verify_token, user=user, inbox_url=inbox_url,
                                move=move, kapso_api_key=kapso_api_key,
                                auto_assign=auto_assign)
        finally:
            await conn.close()

    try:
        _or_exit(go)
    except Taken as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"workspace {workspace_id} saved")


@workspace.command("rotate-secret")
@click.option("--phone-number-id", required=True)
@click.option("--new-secret", required=True, help="the secret Kapso/Meta will sign with")
@click.option("--overlap-hours", default=24.0, show_default=True,
              help="how long the old secret keeps verifying")
def workspace_rotate_secret(phone_number_id: str, new_secret: str, overlap_hours: float) -> None:
    """Rotate a number's webhook secret, both valid during the overlap."""
    from datetime import timedelta

    import asyncpg

    from leadstream.db.migrate import migrate
    from leadstream.db.registry import rotate_secret, weak_secret

    problem = weak_secret(new_secret, "a webhook secret")
    if problem:
        raise click.BadParameter(problem, param_hint="--new-secret")

    async def go() -> bool:
        conn = await asyncpg.connect(get_settings().dsn)
        try:
            await migrate(conn)
            return await rotate_secret(conn, phone_number_id, new_secret,
                                       timedelta(hours=overlap_hours))
        finally:
            await conn.close()

    if not _or_exit(go):
        raise click.ClickException(f"unknown phone_number_id {phone_number_id}")
    click.echo(f"{phone_number_id}: new secret in force; the old one verifies for another "
               f"{overlap_hours:g} h")


@workspace.command("list")
@click.option("--json", "as_json", is_flag=True)
def workspace_list(as_json: bool) -> None:
    """Workspaces, their numbers and tokens (no secrets; tokens by a hash prefix)."""
    import asyncpg
    import orjson

    from leadstream.db.registry import list_workspaces

    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(get_settings().dsn)
        try:
            return await list_workspaces(conn)
        finally:
            await conn.close()

    rows = _or_exit(go)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for w in rows:
        key = f", Kapso API key {w['kapso_api_key']}" if w["kapso_api_key"] else ""
        auto = f", auto-assign {w['auto_assign']}" if w["auto_assign"] != "off" else ""
        click.echo(f"{w['workspace_id']}  (region {w['region']}{key}{auto})")
        for n in w["numbers"]:
            old = f", old secret verifies until {n['old_secret_until']:%Y-%m-%d %H:%M}" \
                if n["old_secret_until"] else ""
            click.echo(f"  number {n['phone_number_id']}{old}")
        for t in w["tokens"]:
            who = f" ({t['user']})" if t["user"] else ""
            click.echo(f"  token  {t['hash']}…  {t['role']}{who}")
    if not rows:
        click.echo("no workspaces")


@workspace.command("revoke")
@click.option("--api-token", default=None, help="the token itself")
@click.option("--token-hash", default=None, help="its hash prefix, as `workspace list` shows")
@click.option("--phone-number-id", default=None, help="remove a number (its webhooks get 401)")
def workspace_revoke(api_token: str | None, token_hash: str | None,
                     phone_number_id: str | None) -> None:
    """Revoke a token or remove a number; running servers stop accepting it within ~5 s."""
    import asyncpg

    from leadstream.db.registry import revoke

    if sum(x is not None for x in (api_token, token_hash, phone_number_id)) != 1:
        raise click.UsageError("name exactly one of --api-token, --token-hash, "
                               "--phone-number-id")

    async def go() -> int:
        conn = await asyncpg.connect(get_settings().dsn)
        try:
            return await revoke(conn, token=api_token, token_hash_prefix=token_hash,
                                phone_number_id=phone_number_id)
        finally:
            await conn.close()

    try:
        n = _or_exit(go)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not n:
        raise click.ClickException("nothing matched")
    click.echo(f"revoked {n}")


def _or_exit(go: Any) -> Any:
    """Run `go()`; a service that is not there is one line, not a traceback."""
    import asyncpg
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    # the client logs every failed connection attempt; the error below says it once
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(go())
    except (KafkaConnectionError, KafkaTimeoutError, TimeoutError) as exc:
        raise click.ClickException(f"cannot reach the Kafka broker: {exc!r}") from None
    except RuntimeError as exc:  # settings: no broker / no database named
        if "no Kafka broker" in str(exc) or "no Postgres" in str(exc):
            raise click.ClickException(str(exc)) from None
        raise
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
            asyncpg.InvalidPasswordError) as exc:
        raise click.ClickException(f"cannot reach Postgres: {exc}") from None


# --------------------------------------------------------------------------- status


@main.command("status")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(as_json: bool) -> None:
    """What the operator on call needs: lag per consumer group and partition, dead letters
    by stage, the last daily close, replica freshness."""
    import orjson

    from leadstream.ops.status import gather, render

    settings = get_settings()
    report = _or_exit(lambda: gather(settings))
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
                   .decode())
    else:
        click.echo(render(report))


# --------------------------------------------------------------------------- reconcile


def _when(value: str | None) -> Any:
    """An ISO 8601 time, or a duration back from now (`90m`, `6h`, `2d`)."""
    from datetime import UTC, datetime, timedelta

    if value is None:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC) - timedelta(seconds=float(value[:-1]) * units[value[-1]])
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: an ISO 8601 time or 90m / 6h / 2d") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@main.command("reconcile")
@click.option("--since", default=None,
              help="read from this time (ISO 8601, or 90m / 6h / 2d ago); default: each "
                   "number's watermark, which then advances")
@click.option("--until", default=None, help="read up to this time (default: now)")
@click.option("--phone-number-id", default=None, help="only this number")
@click.option("--dry-run", is_flag=True, help="report what is missing; produce nothing")
def reconcile_cmd(since: str | None, until: str | None, phone_number_id: str | None,
                  dry_run: bool) -> None:
    """Ingest every message Kapso's API holds that the log does not (contract §5).

    Per number: messages read, missing from the replica, behind in status, records added.
    Exit 1 when a number could not be read (its watermark stays where it was)."""
    import asyncpg

    from leadstream.broker.clients import make_producer
    from leadstream.db.migrate import migrate
    from leadstream.ops.progress import ProgressBar
    from leadstream.reconcile import KapsoApi, Reconciler
    from leadstream.reconcile.service import produce_all

    settings = get_settings()
    start, end = _when(since), _when(until)

    async def go() -> list[Any]:
        pool = await asyncpg.create_pool(settings.dsn, min_size=1,
                                         max_size=settings.reconcile_concurrency + 2)
        producer = None if dry_run else make_producer(settings)
        api = KapsoApi(settings.kapso_api_url)
        bar = ProgressBar("reconcile", unit="slices")
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            if producer is not None:
                await producer.start()
            reconciler = Reconciler(settings, pool, api, None if producer is None else
                                    (lambda records: produce_all(producer, records)))
            return await reconciler.run(since=start, until=end,
                                        phone_number_id=phone_number_id, progress=bar)
        finally:
            bar.close()
            await api.close()
            if producer is not None:
                await producer.stop()
            await pool.close()

    reports = _or_exit(go)
    if not reports:
        click.echo("no number to reconcile (`workspace add --kapso-api-key` gives a "
                   "workspace's numbers a key)" + (f" matching {phone_number_id}"
                                                   if phone_number_id else ""))
    verb = "would add" if dry_run else "added"
    for r in reports:
        head = f"{r.workspace_id}/{r.phone_number_id}  {r.since:%Y-%m-%d %H:%M}..{r.until:%H:%M}"
        if r.busy:
            click.echo(f"{head}  busy (another process is reconciling it)")
        elif r.error:
            click.echo(f"{head}  FAILED after reading {r.read}: {r.error}")
        else:
            click.echo(f"{head}  read {r.read}, missing {r.missing}, behind {r.behind}, "
                       f"{verb} {r.produced if not dry_run else r.missing + r.behind}"
                       + (f", dead-lettered {r.dead_lettered}" if r.dead_lettered else ""))
    sys.exit(1 if any(r.error for r in reports) else 0)


# --------------------------------------------------------------------------- topics


@main.command("topics")
@click.option("--check", is_flag=True,
              help="compare every topic (partitions, replication, configs) with what the code"
                   " declares; exit 1 on any drift")
@click.option("--fix", is_flag=True,
              help="create missing topics and set drifted configs; exit 1 if drift that "
                   "cannot be fixed in place remains (partitions, replication)")
def topics_cmd(check: bool, fix: bool) -> None:
    """Create the topics (final partition count; existing ones are kept), or check them."""
    if not (check or fix):
        from leadstream.broker.clients import ensure_topics

        created = _or_exit(lambda: ensure_topics(get_settings()))
        click.echo("created: " + (", ".join(created) if created else "nothing (all exist)"))
        return
    from leadstream.broker.drift import check as check_topics

    drift, fixed = _or_exit(lambda: check_topics(get_settings(), fix=fix))
    for d in drift:
        click.echo(("fixed   " if d in fixed else "drift   ") + str(d))
    left = [d for d in drift if d not in fixed]
    if not drift:
        click.echo("every topic as declared")
    sys.exit(1 if left else 0)


# --------------------------------------------------------------------------- roles


@main.command("webhook")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="server processes on the one port (SO_REUSEPORT); default"
                   " LEADSTREAM_HTTP_PROCESSES (1)")
def webhook_cmd(processes: int | None) -> None:
    """Run the webhook/API server (one of a fleet)."""
    from leadstream.bootstrap import serve_webhook

    settings = get_settings()
    if processes is not None:
        settings = settings.model_copy(update={"http_processes": processes})
    _logging(settings.log_level, settings.log_format)
    _run_until_signal(lambda stop: serve_webhook(settings, stop), settings.event_loop)


@main.command("worker")
@click.option("--sink/--no-sink", default=True, help="also run the Postgres sink in-process")
def worker_cmd(sink: bool) -> None:
    """Run a Faust worker (agents + tables), with the Postgres sink unless --no-sink."""
    from leadstream.bootstrap import run_worker

    settings = get_settings()
    _use_event_loop(settings.event_loop)
    run_worker(settings, sink=sink)


@main.command("sink")
def sink_cmd() -> None:
    """Run only the Postgres sink (derived topics -> replica)."""
    from leadstream.bootstrap import run_sink

    settings = get_settings()
    _use_event_loop(settings.event_loop)
    run_sink(settings)


@main.command("replay")
@click.option("--workspace", default=None, help="rebuild only this workspace")
@click.option("--verify", is_flag=True,
              help="rebuild into a scratch schema, compare with the live replica (row counts "
                   "and checksums per table), exit 1 on any difference; the live one is kept")
@click.option("--fresh", is_flag=True,
              help="start over even if an earlier replay of this target was interrupted "
                   "(by default it resumes where it stopped)")
def replay_cmd(workspace: str | None, verify: bool, fresh: bool) -> None:
    """Rebuild the Postgres replica from the derived topics (resumable, with progress)."""
    from leadstream.ops.progress import ProgressBar
    from leadstream.sink.replay import replay, replay_and_verify

    settings = get_settings()
    _logging(settings.log_level)
    bar = ProgressBar("replay")
    try:
        if verify:
            result = asyncio.run(replay_and_verify(settings, workspace=workspace, progress=bar))
        else:
            stats = asyncio.run(replay(settings, workspace=workspace, progress=bar,
                                       fresh=fresh))
    finally:
        bar.close()
    if verify:
        for table, v in result["tables"].items():
            mark = "equal" if v["equal"] else "DIFFERENT"
            click.echo(f"{table:22} live {v['live'][0]:>9} rows {v['live'][1][:12]}  "
                       f"rebuilt {v['rebuilt'][0]:>9} rows {v['rebuilt'][1][:12]}  {mark}")
        click.echo("replica equal to the log" if result["equal"] else "replica DIFFERS")
        sys.exit(0 if result["equal"] else 1)
    how = "resumed, " if stats["resumed"] else ""
    click.echo(f"replayed {stats['records']} records ({how}{stats['seconds']:.1f}s, "
               f"{stats['records'] / max(stats['seconds'], 1e-9):,.0f} records/s)")


@main.group()
def dlq() -> None:
    """Dead letters: what could not be processed, and re-driving it."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True)
def dlq_list(limit: int) -> None:
    """The newest dead letters with their reason and source."""
    from leadstream.ops.dlq import read_dead_letters

    letters = asyncio.run(read_dead_letters(get_settings()))
    for _, dl in sorted(letters, key=lambda x: x[1].failed_at)[-limit:]:
        src = f"{dl.source_topic}:{dl.source_partition}@{dl.source_offset}"
        click.echo(f"{dl.failed_at:%Y-%m-%d %H:%M:%S} {dl.stage:8} {dl.event_id}  {src}  "
                   f"{dl.reason}")
    click.echo(f"{len(letters)} dead letters")


@dlq.command("redrive")
@click.argument("event_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="re-drive every worker/sink dead letter")
def dlq_redrive(event_ids: tuple[str, ...], all_: bool) -> None:
    """Publish dead letters again to their source topic (webhook ones must be re-sent)."""
    from leadstream.ops.dlq import redrive

    if not event_ids and not all_:
        raise click.UsageError("name dead letter ids or pass --all")
    result = asyncio.run(redrive(get_settings(), None if all_ else event_ids))
    click.echo(f"re-driven: {len(result['redriven'])}; skipped (webhook bodies, re-send them):"
               f" {len(result['skipped'])}")
    if result["unmarked"]:
        click.echo(f"could not mark {len(result['unmarked'])} as resolved in sync_failures"
                   " (Postgres not reachable): resolve them from the dashboard", err=True)


@main.command("simulate")
@click.option("--url", default=None, help="webhook/API base URL (default: the running `up`)")
@click.option("--rate", default=5.0, show_default=True,
              help="conversation steps per second (a step is one to four requests)")
@click.option("--duration", default=60.0, show_default=True, help="seconds (0: until Ctrl-C)")
@click.option("--seed", type=int, default=None,
              help="repeat a run exactly (default: new numbers and message ids every run)")
@click.option("--customers", default=12, show_default=True,
              help="conversations going on at once")
@click.option("--phone-number-id", default="demo-pnid", show_default=True)
@click.option("--secret", default="demo-secret", show_default=True,
              help="the number's webhook secret")
@click.option("--token", "human_token", default="demo-token", show_default=True,
              help="a human token (notes, status moves)")
@click.option("--sarah-token", default="demo-sarah-token", show_default=True)
@click.option("--brain-token", default="demo-brain-token", show_default=True)
def simulate_cmd(url: str | None, rate: float, duration: float, seed: int | None,
                 customers: int, phone_number_id: str, secret: str, human_token: str,
                 sarah_token: str, brain_token: str) -> None:
    """Play a whole sales line against a running server, through its public interfaces:
    customers write, Sarah qualifies them, the business replies, delivery receipts arrive,
    the Brain bot and a salesperson move statuses and add notes; some conversations are
    dated on earlier days, so daily summaries appear. Exits 1 if any request failed."""
    from leadstream.simulate import Credentials, SalesLine

    settings = get_settings()
    base = url or f"http://{settings.http_host}:{settings.http_port}"
    line = SalesLine(base, Credentials(phone_number_id=phone_number_id, secret=secret,
                                       sarah_token=sarah_token, brain_token=brain_token,
                                       human_token=human_token),
                     seed=seed, rate=rate, concurrent=customers)

    async def go(stop: asyncio.Event) -> None:
        report = await line.run(duration or None, stop)
        sent = ", ".join(f"{k} {v}" for k, v in report["sent"].items()) or "nothing"
        click.echo(f"simulated {report['customers']} customers in {report['seconds']} s "
                   f"(seed {report['seed']}): {sent}")
        if report["failed"]:
            failed = ", ".join(f"{k} {v}" for k, v in report["failed"].items())
            click.echo(f"FAILED: {failed}", err=True)
            for e in report["errors"]:
                click.echo(f"  {e}", err=True)

    _run_until_signal(go)
    if line.failed:
        sys.exit(1)


# --------------------------------------------------------------------------- up


@main.command("up")
@click.option("--demo", is_flag=True,
              help="also play a simulated sales line into the demo workspace while up runs")
@click.option("--demo-workspace/--no-demo-workspace", default=True,
              help="register the demo workspace (id demo, number demo-pnid, secret "
                   "demo-secret, tokens demo-token, demo-sarah-token, demo-brain-token)")
@click.option("--verbose", is_flag=True,
              help="show the services' logs here (by default they go to files)")
def up_cmd(demo: bool, demo_workspace: bool, verbose: bool) -> None:
    """The whole pipeline on one machine, in the foreground until Ctrl-C.

    Starts an embedded broker (Apache Kafka where Java 17+ and Maven are, else Tansu;
    LEADSTREAM_EMBEDDED_BROKER) and Postgres unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
    are set. With Apache Kafka the data persists in LEADSTREAM_DATA_DIR; Tansu keeps its log
    in memory, so that stack starts empty each time (Postgres and worker state reset with it).
    Prints a short summary; the services' logs go to LEADSTREAM_DATA_DIR/logs (warnings and
    errors still show here) unless --verbose.
    """
    from leadstream.bootstrap import one_machine_stack, serve_webhook

    settings = Settings()
    stack = one_machine_stack(settings, demo=demo_workspace or demo, verbose=verbose,
                              notice=click.echo)
    if verbose:
        _logging(settings.log_level)
    else:
        _quiet_logging(settings.log_level, stack.log_dir / "up.log")
    try:
        try:
            settings = stack.start()
        except RuntimeError as e:
            raise click.ClickException(str(e)) from None
        if demo and not stack.demo:
            demo = False  # not safe here (stack explained why)
        click.echo("\n".join(stack.summary()))
        if demo:
            click.echo("  demo traffic    a simulated sales line, ~2 requests/s, while up runs")
        worker = stack.worker
        assert worker is not None

        async def serve_and_watch(stop: asyncio.Event) -> None:
            async def watch() -> None:
                while worker.poll() is None and not stop.is_set():
                    await asyncio.sleep(0.5)
                if worker.poll() is not None:
                    logging.error("worker exited with %s; stopping (its log: %s)",
                                  worker.returncode, stack.log_dir / "worker.log")
                stop.set()

            watcher = asyncio.create_task(watch())
            demo_task = asyncio.create_task(_demo_line(stack.base_url, stop)) if demo else None
            await serve_webhook(settings, stop)
            watcher.cancel()
            if demo_task is not None:
                demo_task.cancel()

        _run_until_signal(serve_and_watch, settings.event_loop)
    finally:
        click.echo("stopping...")
        stack.stop()
        click.echo("stopped.")


def _quiet_logging(level: str, path: Any) -> None:
    """Everything to `path`; only warnings and errors to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.FileHandler(path)
    to_file.setFormatter(fmt)
    to_term = logging.StreamHandler()
    to_term.setLevel(logging.WARNING)
    to_term.setFormatter(fmt)
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.addHandler(to_file)
    root.addHandler(to_term)


async def _demo_line(base: str, stop: asyncio.Event) -> None:
    """The demo's sales line, once the server answers; gentle, until `up` stops."""
    import aiohttp

    from leadstream.simulate import Credentials, SalesLine

    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(base + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    line = SalesLine(base, Credentials(), rate=2.0, concurrent=10)
    # the first minute faster, so the page fills (every status, summaries) at once
    await SalesLine(base, Credentials(), seed=line.seed + 1, rate=8.0, concurrent=12).run(
        60.0, stop)
    report = await line.run(None, stop)
    if report["failed"]:
        logging.warning("demo traffic: failed requests %s (%s)", report["failed"],
                        "; ".join(report["errors"]))


if __name__ == "__main__":  # pragma: no cover
    main()
