"""How the other commands find a running `leadstream up`: a JSON file in the data dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadstream.config import Settings

FILENAME = "runtime.json"


def runtime_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILENAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runtime(data_dir: Path) -> dict[str, Any] | None:
    path = runtime_path(data_dir)
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(info.get("pid", -1))):
        return None
    return info


def write_runtime(data_dir: Path, info: dict[str, Any]) -> Path:
    path = runtime_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **info}, indent=2))
    tmp.replace(path)
    return path


def remove_runtime(data_dir: Path) -> None:
    path = runtime_path(data_dir)
    try:
        info = json.loads(path.read_text())
        if int(info.get("pid", -1)) == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def complete_from_runtime(settings: Settings) -> Settings:
    """Fill broker/database from a running `up` when the environment does not name them."""
    if settings.kafka_bootstrap_servers and settings.database_url:
        return settings
    info = read_runtime(settings.data_dir)
    if not info:
        return settings
    update: dict[str, Any] = {}
    if not settings.kafka_bootstrap_servers:
        update["kafka_bootstrap_servers"] = info.get("kafka_bootstrap_servers")
        update["kafka_flavor"] = info.get("kafka_flavor", "kafka")
    if not settings.database_url:
        update["database_url"] = info.get("database_url")
    return settings.model_copy(update=update)
