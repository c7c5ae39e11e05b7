"""Shared pieces of the embedded service manager: errors, locking, port probes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil


class DevstackError(RuntimeError):
    """An embedded service cannot start or stop; the message says what to do."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise start/stop across processes (web, worker and beat may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def port_accepts(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int | None, name_contains: str, *, cwd: Path | None = None) -> bool:
    """True when `pid` is a live process whose name contains `name_contains`.

    With `cwd`, the process must also run in that directory: both servers chdir into their data
    directory, so a stale pid file whose pid now belongs to another server never matches.
    """
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return (
            proc.is_running()
            and proc.status() != psutil.STATUS_ZOMBIE
            and (name_contains in proc.name() or name_contains in " ".join(proc.cmdline()))
            and (cwd is None or Path(proc.cwd()) == cwd.resolve())
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def read_pid(path: Path) -> int | None:
    """The first line of a pid file as an int, or None."""
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def wait_until(check: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll `check` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def terminate(pid: int, name_contains: str, *, host: str, port: int, timeout: float) -> None:
    """SIGTERM `pid` and wait until it is gone and its port is closed; SIGKILL after `timeout`.

    Both are waited for: an exiting process drops its command line (which pid_alive reads) a
    moment before the kernel closes its sockets.
    """
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        return not pid_alive(pid, name_contains) and not port_accepts(host, port)

    if not wait_until(gone, timeout=timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(gone, timeout=5)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_traversable(path: Path) -> None:
    """Let another OS user reach `path` (the postgres server runs as its own user when we are root)."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            os.chmod(parent, mode | 0o011)


def process_output(exc: subprocess.CalledProcessError | subprocess.TimeoutExpired) -> str:
    """What a failed command printed (pg_ctl and redis-server name problems no log holds)."""
    parts = [exc.stdout, exc.stderr]
    text = "".join(
        part.decode(errors="replace") if isinstance(part, bytes) else part for part in parts if part
    ).strip()
    return f"{text}\n" if text else ""
