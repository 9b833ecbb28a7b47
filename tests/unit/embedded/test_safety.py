"""Safe defaults of the one-machine stack: the demo workspace only where its public
credentials are harmless, and the runtime file (it names the database password) private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from leadstream.embedded.stack import Stack
from leadstream.runtime import write_runtime
from tests.support import env_settings


@pytest.mark.parametrize(("host", "embedded_pg", "safe"), [
    ("127.0.0.1", True, True), ("localhost", True, True), ("::1", True, True),
    ("0.0.0.0", True, False), ("10.1.2.3", True, False), ("my-host", True, False),
    ("127.0.0.1", False, False),  # a real database: never the demo's well-known token
])
def test_the_demo_workspace_only_with_embedded_postgres_on_loopback(
    tmp_path: Path, host: str, embedded_pg: bool, safe: bool
) -> None:
    stack = Stack(env_settings(LEADSTREAM_HTTP_HOST=host, LEADSTREAM_DATA_DIR=tmp_path))
    stack.postgres = object() if embedded_pg else None  # type: ignore[assignment]
    assert stack.demo_is_safe() is safe


def test_the_runtime_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = write_runtime(tmp_path, {"database_url": "postgresql://postgres:secret@x/y"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
