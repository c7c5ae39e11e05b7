"""What every benchmark needs: private services, percentiles, machine facts, a text table."""

from __future__ import annotations

import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

QUANTILES = ("p50", "p90", "p99", "mean")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_redis() -> Iterator[str]:
    """A private redis-server (own data dir, free port): no shared state with `make run` or
    tests. Stopped and deleted afterwards. Yields its URL."""
    from aisaas.devstack import EmbeddedRedis

    data_dir = Path(tempfile.mkdtemp(prefix="aisaas-bench-redis-"))
    server = EmbeddedRedis(data_dir=data_dir, port=free_port())
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "mean": sum(values) / len(values),
        "max": max(values),
    }


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python, OS, and the load average (other processes share the cores)."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def command(module: str) -> str:
    """How this run was started, to paste into docs/benchmarks.md."""
    return shlex.join([".venv/bin/python", "-m", module, *sys.argv[1:]])


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def row(label: str, stats: dict[str, float], keys: Sequence[str] = QUANTILES) -> str:
    return f"  {label:<38}" + "".join(f"{stats[k]:>10.3f}" for k in keys)


def header(label: str, keys: Sequence[str] = QUANTILES) -> str:
    return f"  {label:<38}" + "".join(f"{k:>10}" for k in keys)


# --- child processes ----------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """A clean environment for a child: no provider key, database or Redis URL leaks in from
    the shell."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "TERM")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop a child started in its own session: its group, by its id."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a child's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
