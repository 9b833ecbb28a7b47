"""Workarounds for the embedded broker (Tansu 0.6), in one place, used only with it.

Measured differences from Apache Kafka (see docs/embedded-broker.md) and what we do:

1. ListOffsets(LATEST) answers the newest batch's base offset + 1 when that batch holds
   several records. Faust's changelog recovery targets that offset and silently stops early,
   losing the latest table updates. Fix: `true_end_offsets` asks a Fetch from the listed
   offset and takes the Fetch response's high watermark, which is right. Wired into Faust via
   `TansuTransport` (URL scheme `tansu://`) and usable by plain consumers.
2. A group's first generation is 0 and aiokafka sends LeaveGroup only for generation > 0,
   so the first member of a new group never leaves and the next start waits for its
   eviction. Fix: `install_leave_group_fix` sends LeaveGroup for any known generation >= 0.
3. An empty Fetch sleeps half of the remaining `fetch_max_wait_ms` before looking again,
   so Faust's 1500 ms wait adds up to ~750 ms per hop, and a short wait means many idle
   fetches (CPU). Fix: consumers wait `LEADSTREAM_FETCH_MAX_WAIT_MS` (60 ms; see config);
   `FETCH_MAX_WAIT_MS` (20 ms) is the floor for callers that name none.
4. InitProducerId is rejected: no idempotent/transactional producer. Not patched: the whole
   pipeline is at-least-once with idempotent state and sinks (see agents, sink).

Everything here is a no-op for Apache Kafka because it is never installed there.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Mapping
from typing import cast

import aiokafka
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from leadstream.broker.faust_consumer import SafeOffsetsConsumer, SeekFirstConsumerThread
from leadstream.broker.producer import FaustProducer
from leadstream.config import get_settings

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 20
SCHEME = "tansu"


# ----------------------------------------------------------------------------- 1. end offsets


async def true_end_offsets(
    bootstrap_servers: str | list[str],
    listed: Mapping[TopicPartition, int],
    *,
    timeout: float = 10.0,
) -> dict[TopicPartition, int]:
    """The real log-end offsets: a Fetch from each listed offset, read its high watermark.

    `listed` comes from ListOffsets(LATEST); it is never above the true end, so a fetch from
    it is valid and the response carries the right high watermark even when it holds no data.
    """
    result: dict[TopicPartition, int] = {}
    pending = dict(listed)
    if not pending:
        return result
    helper = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=1024,  # we want the watermark, not the data
        auto_offset_reset="earliest",
    )
    await helper.start()
    try:
        helper.assign(list(pending))
        for tp, off in pending.items():
            helper.seek(tp, off)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending:
            await helper.getmany(*pending, timeout_ms=50, max_records=1)
            for tp in list(pending):
                hw = helper.highwater(tp)
                if hw is not None:
                    result[tp] = max(hw, pending.pop(tp))
            if loop.time() > deadline:
                raise KafkaError(f"no high watermark for {sorted(map(str, pending))}")
    finally:
        await helper.stop()
    return result


# ----------------------------------------------------------------------------- 2. LeaveGroup


async def _leave_any_generation(self: GroupCoordinator) -> None:
    """aiokafka's `_maybe_leave_group`, but for generation >= 0 (Tansu starts at 0)."""
    if (
        self.generation >= 0
        and self.member_id != ""
        and self._group_instance_id is None
    ):
        try:
            await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
        except KafkaError as err:
            log.warning("LeaveGroup failed: %s", err)
        else:
            log.info("LeaveGroup sent (generation %s)", self.generation)
    self.reset_generation()


def install_leave_group_fix(consumer: aiokafka.AIOKafkaConsumer) -> aiokafka.AIOKafkaConsumer:
    """Patch this consumer instance (not the class) so its coordinator leaves on stop."""
    original_start = consumer.start

    async def start() -> None:
        await original_start()
        coordinator = consumer._coordinator
        if isinstance(coordinator, GroupCoordinator):
            coordinator._maybe_leave_group = types.MethodType(
                _leave_any_generation, coordinator
            )

    consumer.start = start
    return consumer


def tune_consumer(consumer: aiokafka.AIOKafkaConsumer, max_wait_ms: int | None = None
                  ) -> aiokafka.AIOKafkaConsumer:
    """All consumer-side fixes for a plain aiokafka consumer (call before `start`);
    `max_wait_ms` for a consumer that trades latency for fewer idle polls."""
    consumer._fetch_max_wait_ms = max_wait_ms or FETCH_MAX_WAIT_MS
    return install_leave_group_fix(consumer)


# ----------------------------------------------------------------------------- Faust transport


class TansuConsumerThread(SeekFirstConsumerThread):
    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        # the settings the app was made from (leadstream.app)
        return tune_consumer(super()._create_worker_consumer(transport),
                             get_settings().fetch_max_wait_ms)

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction or not listed:
            return listed
        transport = cast(faust_aiokafka.Transport, self.transport)
        servers = faust_aiokafka.server_list(transport.url, transport.default_port)
        fixed = await true_end_offsets(
            servers, {TopicPartition(tp.topic, tp.partition): off for tp, off in listed.items()}
        )
        return {TP(tp.topic, tp.partition): off for tp, off in fixed.items()}


class TansuConsumer(SafeOffsetsConsumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the Tansu fixes (and the broker-agnostic
    `SafeOffsetsConsumer`); selected by `tansu://` broker URLs."""

    Consumer = TansuConsumer
    Producer = FaustProducer


def register_transport() -> None:
    """Make `tansu://host:port` a Faust broker URL.

    The package also declares it as a `faust.transports` entry point (Faust's plugin
    convention); registering here as well keeps it working from a source tree.
    """
    from faust.transport.drivers import TRANSPORTS

    if SCHEME not in TRANSPORTS.aliases:
        TRANSPORTS.aliases[SCHEME] = f"{__name__}:TansuTransport"
