"""The rig: a private PostgreSQL and Redis, the seeded data, and ONE daphne process.

Every server is a child on a free loopback port (daphne in its own session, stopped by its
pid). The driver imports no Django: the server is configured through its environment, the data
is seeded by `python -m benchmarks.chat_streams.seed` and `manage.py migrate_schemas`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import common
from .seed import MARKER

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SETTINGS = "aisaas.settings.production"


def say(line: str) -> None:
    """Progress goes to stderr: stdout carries the table or the JSON."""
    sys.stderr.write(f"[chat_streams] {line}\n")
    sys.stderr.flush()


def raise_fd_limit() -> tuple[int, int]:
    """Soft limit of open files up to the hard one, for us and the children we start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _run(env: dict[str, str], argv: list[str], log: Path) -> str:
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S603 - argv built here
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv[1:])}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} failed:\n{out.stdout}{out.stderr}"[-3000:])
    return out.stdout


@dataclass
class Server:
    port: int
    host: str  # the workspace's Host header, with the port
    cookie: str
    conversations: list[int]
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str
    postgres_max_connections: int
    env: dict[str, str] = field(default_factory=dict)

    def proc(self) -> ProcStats:
        return proc_stats(self.process.pid)

    def database_connections(self) -> int:
        """Backends connected to the app database (only daphne is connected during a run)."""
        return self._count(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    def database_sessions(self) -> int:
        """Sessions ever opened on the app database (PostgreSQL ≥ 14 counts them)."""
        return self._count(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )

    def _count(self, query: str) -> int:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(query).fetchone()
        return int(row[0]) if row else 0


@dataclass(frozen=True)
class ProcStats:
    cpu_s: float  # user + system time so far
    rss_mb: float
    threads: int
    fds: int


def proc_stats(pid: int) -> ProcStats:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")" the fields start at 3 (state): utime is 14, stime 15, threads 20, rss 24.
    utime, stime = int(fields[11]), int(fields[12])
    threads, rss_pages = int(fields[17]), int(fields[21])
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return ProcStats(
        cpu_s=(utime + stime) / CLOCK_TICKS,
        rss_mb=rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20,
        threads=threads,
        fds=fds,
    )


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Until daphne answers HTTP on its port (any status: /healthz wants Celery, not run)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"daphne exited with {process.returncode}:\n{common.log_tail(log_path)}"
            )
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            if s.recv(12).startswith(b"HTTP/1.1"):
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"daphne did not answer within {READY_TIMEOUT:g} s:\n{common.log_tail(log_path)}"
    )


@contextmanager
def private_services(workdir: Path) -> Iterator[dict[str, str]]:
    """A private PostgreSQL and Redis (own data dirs, free ports); `make run` and the tests
    are left alone. Yields DATABASE_URL and REDIS_URL."""
    from aisaas.devstack import EmbeddedPostgres, EmbeddedRedis

    (workdir / "postgres").mkdir()
    postgres = EmbeddedPostgres(data_dir=workdir / "postgres" / "data", port=common.free_port())
    redis = EmbeddedRedis(data_dir=workdir / "redis", port=common.free_port())
    try:
        postgres.start()
        redis.start()
        yield {"DATABASE_URL": postgres.url, "REDIS_URL": redis.url}
    finally:
        redis.stop()
        postgres.stop()


@dataclass(frozen=True)
class Migrated:
    workdir: Path
    port: int  # free, for a server the benchmark may start (SITE_URL names it)
    env: dict[str, str]


def production_env(port: int, urls: dict[str, str], **extra: str) -> dict[str, str]:
    """Production settings on private services, with throwaway secrets; `extra` overrides."""
    settings = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "SECRET_KEY": hashlib.sha256(os.urandom(32)).hexdigest(),
        "FIELD_ENCRYPTION_KEYS": _fernet_key(),
        "SITE_URL": f"http://localhost:{port}",
        "LOG_LEVEL": "WARNING",
        **urls,
    }
    return common.clean_env(**{**settings, **extra})


@contextmanager
def migrated_services(prefix: str, *, say: Any = None, **extra: str) -> Iterator[Migrated]:
    """For a benchmark that uses Django in this process: private services, migrated, and this
    process's environment pointed at them (production settings plus `extra`); the database
    connections closed and everything removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with private_services(workdir) as urls:
            port = common.free_port()
            env = production_env(port, urls, **extra)
            if say is not None:
                say("migrate_schemas")
            subprocess.run(
                [sys.executable, "manage.py", "migrate_schemas", "--executor", "standard", "-v0"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            os.environ.update(env)
            try:
                yield Migrated(workdir, port, env)
            finally:
                if "django" in sys.modules and "django.db" in sys.modules:
                    from django.db import connections

                    connections.close_all()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def chat_server(
    workdir: Path,
    *,
    conversations: int,
    tokens_per_second: float,
    log_level: str,
    settings: str = SETTINGS,
) -> Iterator[Server]:
    """daphne on aisaas.asgi:application with the production settings, no provider key (the
    offline local model answers at `tokens_per_second`), a seeded workspace and session."""
    log_path = workdir / "daphne.log"
    port = common.free_port()
    with private_services(workdir) as urls:
        env = production_env(
            port,
            urls,
            DJANGO_SETTINGS_MODULE=settings,
            LOG_LEVEL=log_level,
            LLM_LOCAL_TOKENS_PER_SECOND=f"{tokens_per_second:g}",
        )
        say("migrate_schemas and seed")
        manage = [sys.executable, "manage.py"]
        _run(env, [*manage, "migrate_schemas", "--executor", "standard", "-v", "0"], log_path)
        out = _run(
            env,
            [sys.executable, "-m", "benchmarks.chat_streams.seed", str(conversations)],
            log_path,
        )
        seeded = next(
            json.loads(line[len(MARKER) :]) for line in out.splitlines() if line.startswith(MARKER)
        )
        import psycopg

        with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
            row = conn.execute("SHOW max_connections").fetchone()
        max_connections = int(row[0]) if row else 0
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        argv.append("aisaas.asgi:application")
        say(f"daphne on port {port}")
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - argv built here
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_ready(process, port, log_path)
            yield Server(
                port=port,
                host=f"{seeded['host']}:{port}",
                cookie=seeded["cookie"],
                conversations=list(seeded["conversations"]),
                process=process,
                log_path=log_path,
                database_url=urls["DATABASE_URL"],
                postgres_max_connections=max_connections,
                env=env,
            )
        finally:
            common.stop_process_group(process)


def run_loadgen(job: dict[str, Any], server: Server, sample_every: float = 0.25) -> dict[str, Any]:
    """One step in the load generator's process; samples daphne's CPU meanwhile."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.chat_streams.loadgen"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None
    assert stdout is not None
    sessions_before = server.database_sessions()
    stdin.write(json.dumps(job).encode())
    stdin.close()
    samples: list[tuple[float, float, int, int]] = []
    peak_db = 0
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(stdout.read()))
    reader.start()
    next_db = 0.0
    probes = 0
    while process.poll() is None:
        now = time.monotonic()
        stats = server.proc()
        samples.append((now, stats.cpu_s, stats.threads, stats.fds))
        if now >= next_db:
            with suppress(Exception):
                peak_db = max(peak_db, server.database_connections())
            probes += 1
            next_db = now + 1.0
        time.sleep(sample_every)
    reader.join()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode})")
    result = dict(json.loads(b"".join(chunks)))
    result["server_samples"] = samples
    result["peak_db_connections"] = peak_db
    # Less the probes' own sessions (one per second above, and this one).
    result["db_sessions_opened"] = server.database_sessions() - sessions_before - probes - 1
    return result


@contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aisaas-bench-chat-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
