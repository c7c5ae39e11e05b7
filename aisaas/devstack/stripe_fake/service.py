"""The Stripe fake as a dev-stack service: a background process on a loopback port, started and
stopped like the embedded Postgres and Redis (pid file, log, reuse when already running)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..base import (
    DevstackError,
    file_lock,
    pid_alive,
    port_accepts,
    read_pid,
    tail,
    terminate,
    wait_until,
)

BASE_DIR = Path(__file__).resolve().parents[3]
MODULE = "aisaas.devstack.stripe_fake"


@dataclass(frozen=True)
class StripeFakeService:
    """The fake with its pid file and log in `data_dir`, listening on 127.0.0.1:`port`, sending
    webhooks to `webhook_url`."""

    data_dir: Path
    port: int
    webhook_url: str
    api_key: str = "sk_test_fake"
    webhook_secret: str = "whsec_fake"
    host: str = "127.0.0.1"
    # The variable that sets `port`, named in the error when the port is taken.
    port_env: str = "AISAAS_STRIPE_PORT"

    name = "stripe"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "stripe.log"

    @property
    def _pid_path(self) -> Path:
        return self.data_dir / "stripe.pid"

    def _owns(self, pid: int | None) -> bool:
        return pid_alive(pid, MODULE, cwd=self.data_dir)

    def is_running(self) -> bool:
        """Our fake (per its pid file) is alive and accepts connections."""
        return self._owns(read_pid(self._pid_path)) and port_accepts(self.host, self.port)

    def start(self) -> bool:
        """Start the fake unless it already runs; return True when this call started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.data_dir / ".lock"):
            if self.is_running():
                return False
            if port_accepts(self.host, self.port):
                raise DevstackError(
                    f"Port {self.port} on {self.host} is taken by another process, so the Stripe "
                    f"fake cannot start. Stop that process, set {self.port_env} to a free port, "
                    f"or set STRIPE_SECRET_KEY to use Stripe itself."
                )
            argv = [
                sys.executable,
                "-m",
                MODULE,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--webhook-url",
                self.webhook_url,
                "--api-key",
                self.api_key,
                "--webhook-secret",
                self.webhook_secret,
                "--verbose",
            ]
            env = {**os.environ, "PYTHONPATH": str(BASE_DIR), "PYTHONUNBUFFERED": "1"}
            with self.log_path.open("ab") as log:
                process = subprocess.Popen(
                    argv,
                    cwd=self.data_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self._pid_path.write_text(f"{process.pid}\n")
            wait_until(
                lambda: process.poll() is not None or port_accepts(self.host, self.port),
                timeout=15,
            )
            if not self.is_running():
                process.kill()
                process.wait()
                self._pid_path.unlink(missing_ok=True)
                raise DevstackError(
                    f"The Stripe fake did not start on port {self.port}. Last log lines "
                    f"({self.log_path}):\n{tail(self.log_path)}"
                )
            return True

    def stop(self) -> bool:
        """Stop the fake if it runs; return True when this call stopped it."""
        if not self.data_dir.exists():
            return False
        with file_lock(self.data_dir / ".lock"):
            pid = read_pid(self._pid_path)
            if pid is None or not self._owns(pid):
                return False
            terminate(pid, MODULE, host=self.host, port=self.port, timeout=10)
            self._pid_path.unlink(missing_ok=True)
            return True
