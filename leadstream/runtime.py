"""How the other commands find a running `leadstream up`: a JSON file in the data dir.

Imports nothing of leadstream: `config` reads it (settings completed from a running `up`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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
    # it names the database URL with its password: readable by its owner only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"pid": os.getpid(), **info}, indent=2))
    os.chmod(tmp, 0o600)
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
