"""The Stripe fake's HTTP server: Stripe's wire protocol for the endpoints aisaas uses, a
hosted "checkout page" whose Pay button completes the session and sends signed webhooks, and a
hosted customer portal page whose buttons cancel subscriptions and send signed webhooks.

Wire protocol as the official SDK speaks it: form-encoded POST bodies with bracketed keys
(`line_items[0][price_data][unit_amount]=500`), Bearer API keys, JSON objects with Stripe's
shapes (`object`, `id` prefixes, `livemode`), Stripe's error body
(`{"error": {"type", "message", "param", "code"}}`) and `Idempotency-Key` replays (the same key
with other parameters is an `idempotency_error`, as at Stripe).

Only these endpoints exist (anything else answers Stripe's 404 error):
POST/GET /v1/customers[/{id}], POST/GET /v1/checkout/sessions[/{id}],
GET/DELETE /v1/subscriptions/{id}, POST /v1/billing/meter_events,
POST /v1/billing_portal/sessions, POST /v1/refunds. Hosted pages: /c/pay/{session id}, /p/session/{session id}.
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from .account import StripeFake, StripeFakeState
from .pages import checkout_html, error_page, portal_html
from .portal import PORTAL_PATH, portal_act, portal_session_get, portal_subscriptions
from .wire import API_VERSION, JSON, StripeFakeError, decode_form, new_id, public


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        if path.startswith("/c/pay/"):
            self._checkout_page(method, path.removeprefix("/c/pay/"))
            return
        if path.startswith(PORTAL_PATH):
            self._portal_page(method, path.removeprefix(PORTAL_PATH), body)
            return
        try:
            status, result, replayed = self._api(method, path, body)
        except StripeFakeError as exc:
            status, result, replayed = exc.status, exc.body, False
        headers = {"Request-Id": new_id("req_", 14), "Stripe-Version": API_VERSION}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        self._send(status, json.dumps(result, indent=2), "application/json", headers)

    def _api(self, method: str, path: str, body: str) -> tuple[int, JSON, bool]:
        fake = self.server.fake
        self._authenticate()
        params = decode_form(body) if method == "POST" else {}
        key = self.headers.get("Idempotency-Key")
        if method == "POST" and key:
            token = (fake.api_key, key)
            fingerprint = f"{path}?{body}"
            with fake.state.lock:
                seen = fake.state.idempotency.get(token)
                if seen is not None:
                    if seen[0] != fingerprint:
                        raise StripeFakeError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type_="idempotency_error",
                        )
                    return seen[1], seen[2], True
                # A refused request saves nothing (Stripe: results are saved only once an endpoint
                # started executing, not when the parameters failed validation).
                result = self._route(method, path, params)
                fake.state.idempotency[token] = (fingerprint, 200, result)
            return 200, result, False
        return 200, self._route(method, path, params), False

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header.removeprefix("Bearer ").strip():
            raise StripeFakeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        given = header.removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given, self.server.fake.api_key):
            raise StripeFakeError(401, f"Invalid API Key provided: {given[:8]}{'*' * 8}")

    def _route(self, method: str, path: str, params: JSON) -> JSON:
        fake = self.server.fake
        parts = path.strip("/").split("/")
        with fake.state.lock:
            match method, parts:
                case "POST", ["v1", "customers"]:
                    return fake.customer_create(params)
                case "GET", ["v1", "customers", customer_id]:
                    return fake.customer_get(customer_id)
                case "POST", ["v1", "checkout", "sessions"]:
                    return public(fake.checkout_session_create(params))
                case "GET", ["v1", "checkout", "sessions", session_id]:
                    return fake.checkout_session_get(session_id)
                case "GET", ["v1", "subscriptions", subscription_id]:
                    return fake.subscription_get(subscription_id)
                case "POST", ["v1", "billing", "meter_events"]:
                    return fake.meter_event_create(params)
                case "POST", ["v1", "billing_portal", "sessions"]:
                    return fake.portal_session_create(params)
        # Outside the lock: these deliver a webhook.
        if method == "DELETE" and parts[:2] == ["v1", "subscriptions"] and len(parts) == 3:
            return fake.subscription_cancel(parts[2])
        if method == "POST" and parts == ["v1", "refunds"]:
            return fake.refund_create(params)
        raise StripeFakeError(
            404, f"Unrecognized request URL ({method}: {path}).", code="resource_missing"
        )

    def _checkout_page(self, method: str, session_id: str) -> None:
        fake = self.server.fake
        try:
            if method == "POST":
                session = fake.checkout_session_complete(session_id)
                target = (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session_id)
                self._send(303, "", "text/plain", {"Location": target or f"/c/pay/{session_id}"})
                return
            session = fake.checkout_session_get(session_id)
        except StripeFakeError as exc:
            self._send(exc.status, error_page("Checkout", str(exc)), "text/html; charset=utf-8")
            return
        self._send(200, checkout_html(session), "text/html; charset=utf-8")

    def _portal_page(self, method: str, session_id: str, body: str) -> None:
        """GET shows the customer's subscriptions; POST presses one of the page's buttons and
        comes back to the page (303), as Stripe's portal does."""
        fake = self.server.fake
        try:
            session = portal_session_get(fake, session_id)
        except StripeFakeError as exc:
            page = error_page("Billing portal", str(exc))
            self._send(exc.status, page, "text/html; charset=utf-8")
            return
        if method == "POST":
            try:
                portal_act(fake, session_id, body)
            except StripeFakeError as exc:
                subscriptions = portal_subscriptions(fake, session)
                page = portal_html(session, subscriptions, error=str(exc))
                self._send(exc.status, page, "text/html; charset=utf-8")
                return
            self._send(303, "", "text/plain", {"Location": f"{PORTAL_PATH}{session_id}"})
            return
        page = portal_html(session, portal_subscriptions(fake, session))
        self._send(200, page, "text/html; charset=utf-8")

    def _send(
        self, status: int, text: str, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: StripeFake, *, verbose: bool):
        super().__init__(address, _Handler)
        self.fake = fake
        self.verbose = verbose


class StripeFakeServer:
    """The fake on 127.0.0.1:`port` (0: a free one) in a background thread; a context manager."""

    def __init__(
        self,
        *,
        api_key: str = "sk_test_fake",
        webhook_secret: str = "whsec_fake",  # noqa: S107 (the fake's test-mode default)
        webhook_url: str = "",
        port: int = 0,
        host: str = "127.0.0.1",
        verbose: bool = False,
    ):
        self.fake = StripeFake(
            api_key=api_key, webhook_secret=webhook_secret, webhook_url=webhook_url
        )
        self._server = _Server((host, port), self.fake, verbose=verbose)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.fake.base_url = self.url
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> StripeFakeState:
        return self.fake.state

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
