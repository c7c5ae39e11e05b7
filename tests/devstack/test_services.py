"""The embedded service manager against real PostgreSQL and Redis servers.

Every test runs its servers in its own temporary data directory on free loopback ports, so it
never touches the dev (.data/dev) or test (.data/test) servers; fixtures stop what they start.
Fresh clusters cost ~1.5 s each, so the start/reuse/stop cases share one module-scoped stack.

Server data lives in `mkdtemp` directories rather than pytest's tmp_path: as root, Postgres runs
as another OS user that must traverse the whole path, and every pytest session that starts
(a concurrent `make test`, say) resets /tmp/pytest-of-<user> to 0700, locking it out.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from aisaas import devstack
from aisaas.devstack import DevstackError, EmbeddedPostgres, EmbeddedRedis, Service
from aisaas.devstack.base import port_accepts, read_pid

# The profiles' default ports: a test never runs a server on one of them.
PROFILE_PORTS = {port for ports in devstack.DEFAULT_PORTS.values() for port in ports.values()}


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports nothing listens on (all held open at once, so never repeated)."""
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] in PROFILE_PORTS:
                sock.close()
                continue
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class Stack:
    """The test profile's services, rooted in a temporary AISAAS_DATA_DIR on free ports."""

    environ: dict[str, str]
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    started: list[Service] = field(default_factory=list)

    @property
    def services(self) -> list[Service]:
        return [self.postgres, self.redis]


def make_stack(root: Path) -> Stack:
    pg_port, redis_port = free_ports(2)
    environ = {
        "AISAAS_DATA_DIR": str(root),
        "AISAAS_TEST_PG_PORT": str(pg_port),
        "AISAAS_TEST_REDIS_PORT": str(redis_port),
    }
    postgres, redis_service = devstack.services_for("test", environ)
    assert isinstance(postgres, EmbeddedPostgres)
    assert isinstance(redis_service, EmbeddedRedis)
    return Stack(environ=environ, postgres=postgres, redis=redis_service)


def server_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="aisaas-devstack-test-"))


@pytest.fixture(scope="module")
def running() -> Iterator[Stack]:
    """One started stack shared by the start, reuse and stop tests."""
    root = server_root()
    stack = make_stack(root / "data")
    try:
        stack.started.extend(devstack.ensure_running(stack.services))
        yield stack
    finally:
        devstack.stop(stack.services)
    # Only once stopped: deleting a running server's directory would orphan it.
    shutil.rmtree(root)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A not-yet-started stack of this test's own; stopped afterwards whatever the test did."""
    root = server_root()
    fresh = make_stack(root / "data")
    try:
        yield fresh
    finally:
        devstack.stop(fresh.services)
    shutil.rmtree(root)


def postgres_pid(service: EmbeddedPostgres) -> int | None:
    return read_pid(service.data_dir / "postmaster.pid")


def redis_pid(service: EmbeddedRedis) -> int | None:
    return read_pid(service.data_dir / "redis.pid")


def listen_on(port: int) -> socket.socket:
    """A plain socket listening on `port`: "another process" holding the service's port."""
    return socket.create_server(("127.0.0.1", port))


# --- start, reuse, stop --------------------------------------------------------------------


def test_start_runs_postgres_with_extensions_and_redis(running: Stack) -> None:
    # given the module stack, started by ensure_running on an empty data directory

    # when we connect to the URLs it advertises
    with psycopg.connect(running.postgres.url, connect_timeout=5) as conn:
        extensions = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
    answers = redis.Redis.from_url(running.redis.url).ping()

    # then both servers were started by that call, answer, and Postgres has its extensions
    assert running.started == running.services
    assert all(service.is_running() for service in running.services)
    assert {"vector", "pg_trgm"} <= extensions
    assert answers is True
    assert (running.postgres.data_dir / "PG_VERSION").exists()
    assert running.postgres.data_dir == (
        Path(running.environ["AISAAS_DATA_DIR"]) / "test" / "postgres" / "data"
    )


def test_start_reuses_servers_that_already_run(running: Stack) -> None:
    # given the running stack and its server processes
    pids = (postgres_pid(running.postgres), redis_pid(running.redis))

    # when the same services are asked to start again
    started = devstack.ensure_running(running.services)

    # then nothing new starts and the same processes keep serving
    assert started == []
    assert (postgres_pid(running.postgres), redis_pid(running.redis)) == pids
    assert all(service.is_running() for service in running.services)


def test_stop_then_start_keeps_the_data(running: Stack) -> None:
    # given a row in Postgres and a key in Redis
    with psycopg.connect(running.postgres.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('row')")
    redis.Redis.from_url(running.redis.url).set("kept", "key")

    # when the stack stops, stops again, then starts again
    stopped = devstack.stop(running.services)
    ports_closed = not any(
        port_accepts("127.0.0.1", service.port) for service in (running.postgres, running.redis)
    )
    stopped_again = devstack.stop(running.services)
    restarted = devstack.ensure_running(running.services)

    # then Redis stopped first, the second stop was a no-op, and the restart kept the data
    assert stopped == [running.redis, running.postgres]
    assert ports_closed
    assert stopped_again == []
    assert restarted == running.services
    with psycopg.connect(running.postgres.url) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("row",)]
    assert redis.Redis.from_url(running.redis.url).get("kept") == b"key"


def test_stale_postgres_pid_file_never_stops_another_server(running: Stack, tmp_path: Path) -> None:
    # given a data directory whose postmaster.pid names the pid of another cluster's server
    (port,) = free_ports(1)
    stale = EmbeddedPostgres(data_dir=tmp_path / "postgres" / "data", port=port)
    stale.data_dir.mkdir(parents=True)
    (stale.data_dir / "postmaster.pid").write_text(f"{postgres_pid(running.postgres)}\n")

    # when that service is stopped
    stopped = stale.stop()

    # then it is not running, nothing was stopped and the other server still runs
    assert stopped is False
    assert stale.is_running() is False
    assert running.postgres.is_running()


def test_stale_redis_pid_file_never_stops_another_server(running: Stack, tmp_path: Path) -> None:
    # given a data directory whose redis.pid names the pid of another redis-server
    (port,) = free_ports(1)
    stale = EmbeddedRedis(data_dir=tmp_path / "redis", port=port)
    stale.data_dir.mkdir(parents=True)
    (stale.data_dir / "redis.pid").write_text(f"{redis_pid(running.redis)}\n")

    # when that service is stopped
    stopped = stale.stop()

    # then it is not running, nothing was stopped and the other server still runs
    assert stopped is False
    assert stale.is_running() is False
    assert running.redis.is_running()


# --- failures with a message that says what to do ------------------------------------------


@pytest.mark.parametrize(
    ("name", "port_env"),
    [("postgres", "AISAAS_TEST_PG_PORT"), ("redis", "AISAAS_TEST_REDIS_PORT")],
)
def test_start_refuses_a_port_taken_by_another_process(
    stack: Stack, name: str, port_env: str
) -> None:
    # given a service whose port another process listens on
    service = stack.postgres if name == "postgres" else stack.redis

    # when the service starts
    with listen_on(service.port), pytest.raises(DevstackError) as raised:
        service.start()

    # then the error names the port and the variable that moves it, and nothing started
    message = str(raised.value)
    assert f"Port {service.port}" in message
    assert "taken by another process" in message
    assert port_env in message
    assert service.is_running() is False


def test_start_refuses_a_non_empty_data_dir_without_a_cluster(stack: Stack) -> None:
    # given a data directory holding files but no PG_VERSION
    data_dir = stack.postgres.data_dir
    data_dir.mkdir(parents=True)
    (data_dir / "notes.txt").write_text("not a cluster")

    # when Postgres starts
    with pytest.raises(DevstackError) as raised:
        stack.postgres.start()

    # then the error names the directory and the missing file, and leaves the files alone
    message = str(raised.value)
    assert str(data_dir) in message
    assert "PG_VERSION is missing" in message
    assert (data_dir / "notes.txt").read_text() == "not a cluster"
    assert stack.postgres.is_running() is False


def test_start_reports_a_corrupt_cluster_with_its_log(stack: Stack) -> None:
    # given a data directory with a PG_VERSION but garbage instead of a cluster, written by
    # this process rather than by the server (as after a bad restore)
    data_dir = stack.postgres.data_dir
    data_dir.mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text("18\n")
    (data_dir / "base").write_text("garbage")

    # when Postgres starts
    with pytest.raises(DevstackError) as raised:
        stack.postgres.start()

    # then the error names the data directory and quotes the server's own log lines
    message = str(raised.value)
    assert f"PostgreSQL did not start from {data_dir}" in message
    assert f"Last log lines ({stack.postgres.log_path})" in message
    assert "postgresql.conf" in message
    assert stack.postgres.is_running() is False
    assert not port_accepts("127.0.0.1", stack.postgres.port)


def test_start_reports_a_corrupt_redis_dump_without_waiting_out_the_timeout(stack: Stack) -> None:
    # given a Redis data directory whose dump.rdb is garbage
    stack.redis.data_dir.mkdir(parents=True)
    (stack.redis.data_dir / "dump.rdb").write_text("garbage")

    # when Redis starts
    began = time.monotonic()
    with pytest.raises(DevstackError) as raised:
        stack.redis.start()
    elapsed = time.monotonic() - began

    # then the error names the dump and quotes the log, as soon as the server died
    message = str(raised.value)
    assert f"{stack.redis.data_dir}/dump.rdb is corrupt" in message
    assert "RDB" in message
    assert elapsed < 10
    assert stack.redis.is_running() is False


# --- which services a profile needs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ({}, ["postgres", "redis"]),
        ({"DATABASE_URL": "postgres://db.example/app"}, ["redis"]),
        ({"REDIS_URL": "redis://cache.example/0"}, ["postgres"]),
        (
            {"DATABASE_URL": "postgres://db.example/app", "REDIS_URL": "redis://cache.example/0"},
            [],
        ),
    ],
)
@pytest.mark.parametrize("profile", ["dev", "test"])
def test_services_for_skips_what_a_url_configures(
    profile: str, configured: dict[str, str], expected: list[str]
) -> None:
    # given an environment that configures some server URLs

    # when the profile's services are listed
    services = devstack.services_for(profile, {"AISAAS_DATA_DIR": "/nonexistent", **configured})

    # then only the unconfigured ones are embedded
    assert [service.name for service in services] == expected


@pytest.mark.parametrize(
    ("profile", "pg_env", "redis_env"),
    [
        ("dev", "AISAAS_PG_PORT", "AISAAS_REDIS_PORT"),
        ("test", "AISAAS_TEST_PG_PORT", "AISAAS_TEST_REDIS_PORT"),
    ],
)
def test_services_for_reads_the_profile_data_dir_and_ports(
    tmp_path: Path, profile: str, pg_env: str, redis_env: str
) -> None:
    # given a data root and ports from the environment
    environ = {"AISAAS_DATA_DIR": str(tmp_path), pg_env: "40001", redis_env: "40002"}

    # when the profile's services are listed
    postgres, redis_service = devstack.services_for(profile, environ)

    # then they live under <root>/<profile> on those ports
    assert isinstance(postgres, EmbeddedPostgres)
    assert isinstance(redis_service, EmbeddedRedis)
    assert postgres.data_dir == tmp_path / profile / "postgres" / "data"
    assert redis_service.data_dir == tmp_path / profile / "redis"
    assert (postgres.port, redis_service.port) == (40001, 40002)
    assert (postgres.port_env, redis_service.port_env) == (pg_env, redis_env)


def test_services_for_rejects_a_port_that_is_not_a_number() -> None:
    # given a test port variable that is not a number
    environ = {"AISAAS_TEST_PG_PORT": "fifty"}

    # when the test profile's services are listed
    with pytest.raises(DevstackError) as raised:
        devstack.services_for("test", environ)

    # then the error names the variable and its value
    assert "AISAAS_TEST_PG_PORT must be a port number, got 'fifty'" in str(raised.value)


def test_services_for_rejects_an_unknown_profile() -> None:
    # given / when a profile that does not exist
    with pytest.raises(DevstackError) as raised:
        devstack.services_for("staging", {})

    # then the error lists the known ones
    assert "Unknown profile 'staging'" in str(raised.value)
    assert "['dev', 'test']" in str(raised.value)


# --- python -m aisaas.devstack ----------------------------------------------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aisaas.devstack", *args],
        cwd=devstack.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def inherited_env() -> dict[str, str]:
    """This process's environment without server URLs or devstack settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL"} and not key.startswith("AISAAS_")
    }


@pytest.fixture
def cli_env(stack: Stack) -> dict[str, str]:
    return {**inherited_env(), **stack.environ}


def test_cli_up_status_down(stack: Stack, cli_env: dict[str, str]) -> None:
    # given the test profile pointed at a fresh data dir and free ports via the environment
    pg_url, redis_url = stack.postgres.url, stack.redis.url

    # when the CLI brings it up twice, reports, takes it down and reports again
    up = cli(cli_env, "up", "--profile", "test")
    up_again = cli(cli_env, "up", "--profile", "test")
    status_up = cli(cli_env, "status", "--profile", "test")
    down = cli(cli_env, "down", "--profile", "test")
    status_down = cli(cli_env, "status", "--profile", "test")

    # then each command says what happened, on the ports and in the directory it was given
    assert [r.returncode for r in (up, up_again, status_up, down, status_down)] == [0] * 5
    assert up.stdout.split() == f"postgres started {pg_url} redis started {redis_url}".split()
    assert up_again.stdout.count("already running") == 2
    assert (
        status_up.stdout.split() == f"postgres running {pg_url} redis running {redis_url}".split()
    )
    assert down.stdout.split() == ["postgres", "stopped", "redis", "stopped"]
    assert status_down.stdout.split() == (
        f"postgres stopped {pg_url} redis stopped {redis_url}".split()
    )
    assert (Path(cli_env["AISAAS_DATA_DIR"]) / "test" / "postgres" / "data" / "PG_VERSION").exists()


def test_cli_dev_profile_reads_its_own_port_variables(tmp_path: Path) -> None:
    # given the dev profile's variables pointing at a temporary root and free ports
    pg_port, redis_port = free_ports(2)
    env = inherited_env()
    env.update(
        AISAAS_DATA_DIR=str(tmp_path),
        AISAAS_PG_PORT=str(pg_port),
        AISAAS_REDIS_PORT=str(redis_port),
    )
    env.pop("STRIPE_SECRET_KEY", None)

    # when the CLI reports the dev profile's status
    status = cli(env, "status", "--profile", "dev")

    # then it reports those ports, not the dev defaults, and touches nothing (with no
    # STRIPE_SECRET_KEY the dev profile also has the Stripe fake)
    assert status.returncode == 0
    assert f"127.0.0.1:{pg_port}/aisaas" in status.stdout
    assert f"redis://127.0.0.1:{redis_port}/0" in status.stdout
    assert status.stdout.count("stopped") == 3
    assert list(tmp_path.iterdir()) == []


def test_cli_manages_nothing_when_both_urls_are_set(stack: Stack, cli_env: dict[str, str]) -> None:
    # given DATABASE_URL and REDIS_URL in the environment
    env = {**cli_env, "DATABASE_URL": "postgres://db.example/app", "REDIS_URL": "redis://r/0"}

    # when the CLI is asked to bring the stack up
    up = cli(env, "up", "--profile", "test")

    # then it says there is nothing to manage and starts nothing
    assert up.returncode == 0
    assert "no embedded services to manage" in up.stdout
    assert not Path(cli_env["AISAAS_DATA_DIR"]).exists()


def test_cli_reports_a_taken_port_and_exits_2(stack: Stack, cli_env: dict[str, str]) -> None:
    # given another process listening on the test profile's Postgres port
    with listen_on(stack.postgres.port):
        # when the CLI brings the stack up
        up = cli(cli_env, "up", "--profile", "test")

    # then it exits 2 with the reason on stderr, naming the variable to change
    assert up.returncode == 2
    assert up.stderr.startswith(f"error: Port {stack.postgres.port} on 127.0.0.1 is taken")
    assert "AISAAS_TEST_PG_PORT" in up.stderr
    assert stack.postgres.is_running() is False
