"""python -m aisaas.devstack.stripe_fake --port N --webhook-url URL: serve until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import StripeFakeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aisaas.devstack.stripe_fake")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--webhook-url", default="")
    parser.add_argument("--api-key", default="sk_test_fake")
    parser.add_argument("--webhook-secret", default="whsec_fake")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = StripeFakeServer(
        api_key=args.api_key,
        webhook_secret=args.webhook_secret,
        webhook_url=args.webhook_url,
        port=args.port,
        host=args.host,
        verbose=args.verbose,
    )

    def shutdown(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: never call it on the serving thread.
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"Stripe fake on {server.url}, webhooks to {args.webhook_url or '(none)'}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
