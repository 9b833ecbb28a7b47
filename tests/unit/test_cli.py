"""The CLI's choice of event loop (`LEADSTREAM_EVENT_LOOP`), and that a server run under it
stops on SIGTERM as under the standard loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

import click
import pytest

from leadstream import cli


def test_asyncio_is_the_standard_loop() -> None:
    assert cli._loop_factory("asyncio") is None


def test_auto_and_uvloop_pick_uvloop_where_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert cli._loop_factory("auto") is uvloop.new_event_loop
    assert cli._loop_factory("uvloop") is uvloop.new_event_loop


def test_uvloop_asked_for_but_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    with pytest.raises(click.ClickException, match="uvloop is not installed"):
        cli._loop_factory("uvloop")
    assert cli._loop_factory("auto") is None


@pytest.mark.parametrize("event_loop", ["asyncio", "auto"])
def test_a_signal_stops_the_main_on_either_loop(event_loop: str) -> None:
    if event_loop == "auto":
        pytest.importorskip("uvloop")
    seen: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        await asyncio.wait_for(stop.wait(), 10)

    cli._run_until_signal(main, event_loop)
    assert seen and (seen[0].startswith("uvloop") == (event_loop == "auto"))


@pytest.mark.parametrize("event_loop", ["asyncio", "auto"])
def test_the_worker_and_the_sink_make_their_loops_on_the_setting(event_loop: str) -> None:
    """`leadstream worker` and `leadstream sink` set the loop policy before mode's Worker
    takes the current loop: every loop the process makes is the one asked for."""
    if event_loop == "auto":
        pytest.importorskip("uvloop")
    before = asyncio.get_event_loop_policy()
    try:
        cli._use_event_loop(event_loop)
        loop = asyncio.new_event_loop()
        try:
            assert type(loop).__module__.startswith("uvloop") == (event_loop == "auto")
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(before)
