"""`make run`: embedded services, migrations, demo data, then web + worker + beat together.

Ctrl-C stops the processes it started, the embedded services included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from . import BASE_DIR, Service, ensure_running, stop, with_stripe_fake

COLOURS = {"web": "36", "worker": "33", "beat": "35", "devstack": "32"}


@dataclass(frozen=True)
class Proc:
    name: str
    argv: list[str]


def _say(name: str, line: str) -> None:
    colour = COLOURS.get(name, "0")
    prefix = f"\033[{colour}m{name:<8}|\033[0m " if sys.stdout.isatty() else f"{name:<8}| "
    sys.stdout.write(prefix + line.rstrip("\n") + "\n")
    sys.stdout.flush()


def _pump(name: str, proc: subprocess.Popen[str]) -> None:
    """Copy a child's output to ours, line by line, for as long as it runs. It must never stop
    reading: a child whose pipe fills up blocks on its next log line (a web process that then
    answers nothing). So undecodable bytes are replaced (the pipe is read with
    errors="replace") and a line that can't be written is dropped, not fatal."""
    assert proc.stdout is not None
    for line in proc.stdout:
        with contextlib.suppress(Exception):  # e.g. our stdout went away: keep draining
            _say(name, line)


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A child whose output (stderr too) we read as UTF-8, undecodable bytes replaced."""
    return subprocess.Popen(
        argv,
        cwd=BASE_DIR,
        env=env,
        text=True,
        encoding="utf-8",
        errors="replace",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def processes(host: str, port: int) -> list[Proc]:
    python = sys.executable
    return [
        Proc(
            "web", [python, "-m", "daphne", "-b", host, "-p", str(port), "aisaas.asgi:application"]
        ),
        Proc(
            "worker",
            [
                python,
                "-m",
                "celery",
                "-A",
                "aisaas",
                "worker",
                "-l",
                "INFO",
                "--concurrency",
                "2",
                "-n",
                "worker@%h",
            ],
        ),
        Proc(
            "beat",
            [
                python,
                "-m",
                "celery",
                "-A",
                "aisaas",
                "beat",
                "-l",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
        ),
    ]


def run(host: str = "127.0.0.1", port: int = 8000) -> int:
    """Bring the whole product up and block until Ctrl-C."""
    services: Sequence[Service] = with_stripe_fake("dev")
    started = ensure_running(services)
    for service in services:
        verb = "started" if service in started else "reusing"
        _say("devstack", f"{verb} embedded {service.name} at {service.url}")
    children: list[subprocess.Popen[str]] = []
    names: dict[int, str] = {}
    stopping = threading.Event()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        _manage("migrate_schemas", "--executor", "standard", "-v", "0")
        _manage("seed_demo")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for spec in processes(host, port):
            child = _start(spec.argv, env)
            children.append(child)
            names[child.pid] = spec.name
            threading.Thread(target=_pump, args=(spec.name, child), daemon=True).start()
        _say(
            "devstack",
            f"serving http://localhost:{port} and http://acme.localhost:{port}"
            " — Ctrl-C stops everything",
        )
        while not stopping.wait(0.5):
            dead = [c for c in children if c.poll() is not None]
            if dead:
                name, code = names[dead[0].pid], dead[0].returncode
                _say("devstack", f"{name} exited with code {code}; shutting down")
                return 1
        return 0
    except subprocess.CalledProcessError as exc:
        _say(
            "devstack", f"{' '.join(map(str, exc.cmd[1:]))} failed with exit code {exc.returncode}"
        )
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        for service in stop(started):
            _say("devstack", f"stopped embedded {service.name}")
