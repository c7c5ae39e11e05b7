"""python -m aisaas.devstack {up,down,status,run} [--profile dev|test]."""

from __future__ import annotations

import argparse
import sys

# Reads .env into the environment, so DATABASE_URL / REDIS_URL / ports there count here too.
from aisaas import env  # noqa: F401

from . import DevstackError, ensure_running, stop, with_stripe_fake


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aisaas.devstack")
    parser.add_argument("command", choices=["up", "down", "status", "run"])
    parser.add_argument("--profile", default="dev", choices=["dev", "test"])
    parser.add_argument("--port", type=int, default=8000, help="web port for `run`")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from .run import run

            return run(port=args.port)
        services = with_stripe_fake(args.profile)
        if not services:
            print("DATABASE_URL and REDIS_URL are set: no embedded services to manage.")
            return 0
        if args.command == "up":
            started = ensure_running(services)
            for service in services:
                state = "started" if service in started else "already running"
                print(f"{service.name:<9} {state:<16} {service.url}")
        elif args.command == "down":
            stopped = stop(services)
            for service in services:
                print(f"{service.name:<9} {'stopped' if service in stopped else 'not running'}")
        else:
            for service in services:
                state = "running" if service.is_running() else "stopped"
                print(f"{service.name:<9} {state:<8} {service.url}")
    except DevstackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
