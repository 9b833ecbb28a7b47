"""`leadstream` command line (contract §5). `--help` on each command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import click

from leadstream.config import Settings, get_settings


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_until_signal(main: Any) -> None:
    """Run `main(stop_event)` with SIGINT/SIGTERM setting the event."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


@click.group()
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

    applied = asyncio.run(migrate_url(get_settings().dsn))
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
def workspace_add(workspace_id: str, phone_number_id: str | None, webhook_secret: str | None,
                  api_token: str | None, role: str, region: str | None,
                  verify_token: str | None, user: str | None) -> None:
    """Register a workspace, a number and/or a token (repeat to add more)."""
    import asyncpg

    from leadstream.db.migrate import migrate
    from leadstream.db.registry import add_workspace

    if ":" in workspace_id:
        raise click.BadParameter("must not contain ':'", param_hint="--id")
    if phone_number_id and not webhook_secret:
        raise click.BadParameter("--phone-number-id needs --webhook-secret")
    if user and (role != "human" or not api_token):
        raise click.BadParameter("--user names the person of a human --api-token")
    settings = get_settings()

    async def go() -> None:
        conn = await asyncpg.connect(settings.dsn)
        try:
            await migrate(conn)
            await add_workspace(conn, workspace_id=workspace_id, phone_number_id=phone_number_id,
                                webhook_secret=webhook_secret, api_token=api_token, role=role,
                                region=region or settings.default_region,
                                verify_token=verify_token, user=user)
        finally:
            await conn.close()

    asyncio.run(go())
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
    from leadstream.db.registry import rotate_secret

    async def go() -> bool:
        conn = await asyncpg.connect(get_settings().dsn)
        try:
            await migrate(conn)
            return await rotate_secret(conn, phone_number_id, new_secret,
                                       timedelta(hours=overlap_hours))
        finally:
            await conn.close()

    if not asyncio.run(go()):
        raise click.ClickException(f"unknown phone_number_id {phone_number_id}")
    click.echo(f"{phone_number_id}: new secret in force; the old one verifies for another "
               f"{overlap_hours:g} h")


# --------------------------------------------------------------------------- topics


@main.command("topics")
def topics_cmd() -> None:
    """Create the topics (final partition count; existing ones are kept)."""
    from leadstream.broker.clients import ensure_topics

    created = asyncio.run(ensure_topics(get_settings()))
    click.echo("created: " + (", ".join(created) if created else "nothing (all exist)"))


# --------------------------------------------------------------------------- roles


@main.command("webhook")
def webhook_cmd() -> None:
    """Run the webhook/API server (one of a fleet)."""
    from leadstream.http.server import serve

    settings = get_settings()
    _logging(settings.log_level)
    _run_until_signal(lambda stop: serve(settings, stop))


@main.command("worker")
@click.option("--sink/--no-sink", default=True, help="also run the Postgres sink in-process")
def worker_cmd(sink: bool) -> None:
    """Run a Faust worker (agents + tables), with the Postgres sink unless --no-sink."""
    from leadstream.broker.clients import ensure_topics
    from leadstream.db.migrate import migrate_url

    settings = get_settings()
    asyncio.run(ensure_topics(settings))
    if sink or settings.replica_writer == "worker":
        asyncio.run(migrate_url(settings.dsn))
    import gc

    import faust

    from leadstream.agents.agent import app
    from leadstream.sink.service import PostgresSink
    from leadstream.summarize.service import SummaryService

    services: list[Any] = [SummaryService(settings)]
    if sink:
        services.append(PostgresSink(settings))
    worker = faust.Worker(app, *services, loglevel=settings.log_level.upper(), quiet=True,
                          override_logging=True)
    # Faust's progress spinner sets the root logger to DEBUG whenever the level is WARN or
    # above, so every aiokafka/faust debug call built a LogRecord: ~8% of the worker's CPU
    # (py-spy, bench/suite.py). Without a spinner the root logger keeps the asked level.
    worker.spinner = None
    # a flush allocates many short-lived models: collect the young generation less often,
    # and keep what was loaded at start out of every full collection (bench/agent_cpu.py:
    # 83-92 against 97-106 us/event in the rules)
    gc.set_threshold(20_000, 50, 100)
    gc.freeze()
    worker.execute_from_commandline()


@main.command("sink")
def sink_cmd() -> None:
    """Run only the Postgres sink (derived topics -> replica)."""
    from mode import Worker

    from leadstream.db.migrate import migrate_url
    from leadstream.sink.service import PostgresSink

    settings = get_settings()
    asyncio.run(migrate_url(settings.dsn))
    Worker(PostgresSink(settings), loglevel=settings.log_level.upper()).execute_from_commandline()


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


@main.command("simulate")
@click.option("--url", default=None, help="webhook base URL (default: the running `up`)")
@click.option("--workspace", "workspace_id", default="demo")
@click.option("--phone-number-id", default="demo-pnid")
@click.option("--secret", default="demo-secret")
@click.option("--leads", default=50, show_default=True)
@click.option("--rate", default=20.0, show_default=True, help="events per second")
@click.option("--duration", default=10.0, show_default=True, help="seconds")
def simulate_cmd(url: str | None, workspace_id: str, phone_number_id: str, secret: str,
                 leads: int, rate: float, duration: float) -> None:
    """Send realistic signed Kapso traffic to a running webhook."""
    from leadstream.simulate import run_simulation

    settings = get_settings()
    base = url or f"http://{settings.http_host}:{settings.http_port}"
    stats = asyncio.run(run_simulation(base, phone_number_id=phone_number_id, secret=secret,
                                       leads=leads, rate=rate, duration=duration))
    click.echo(stats)


# --------------------------------------------------------------------------- up


@main.command("up")
@click.option("--demo/--no-demo", default=True,
              help="register a demo workspace (id demo, number demo-pnid, secret demo-secret, "
                   "token demo-token)")
def up_cmd(demo: bool) -> None:
    """The whole pipeline on one machine, in the foreground until Ctrl-C.

    Starts an embedded broker (Apache Kafka where Java 17+ and Maven are, else Tansu;
    LEADSTREAM_EMBEDDED_BROKER) and Postgres unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL
    are set. With Apache Kafka the data persists in LEADSTREAM_DATA_DIR; Tansu keeps its log
    in memory, so that stack starts empty each time (Postgres and worker state reset with it).
    """
    from leadstream.embedded.stack import Stack

    settings = Settings()
    _logging(settings.log_level)
    stack = Stack(settings, demo=demo, notice=click.echo)
    try:
        try:
            settings = stack.start()
        except RuntimeError as e:
            raise click.ClickException(str(e)) from None
        click.echo("\n" + "\n".join(stack.summary()) + "\n")
        from leadstream.http.server import serve

        worker = stack.worker
        assert worker is not None

        async def serve_and_watch(stop: asyncio.Event) -> None:
            async def watch() -> None:
                while worker.poll() is None and not stop.is_set():
                    await asyncio.sleep(0.5)
                if worker.poll() is not None:
                    logging.error("worker exited with %s; stopping", worker.returncode)
                stop.set()

            watcher = asyncio.create_task(watch())
            await serve(settings, stop)
            watcher.cancel()

        _run_until_signal(serve_and_watch)
    finally:
        click.echo("stopping...")
        stack.stop()
        click.echo("stopped.")


if __name__ == "__main__":  # pragma: no cover
    main()
