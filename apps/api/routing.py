"""Which endpoint answers a request: (method, path) → route. A path segment written `{name}`
matches one non-empty segment, handed to the endpoint as `request.path_params[name]`; exact
paths win over templates (`/v1/documents/search` is never a document id, whatever the
method). An unknown path is a 404; a known path asked with another method a 405 that lists the
methods it has (`Allow`)."""

from __future__ import annotations

from . import wire
from .request import Route

Template = tuple[str, ...]


def _segments(path: str) -> Template:
    return tuple(path.rstrip("/").split("/"))


def _match(template: Template, segments: Template) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(template, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class Router:
    def __init__(self, routes: dict[tuple[str, str], Route]):
        self._exact = {(m, p): r for (m, p), r in routes.items() if "{" not in p}
        self._templates = [(m, _segments(p), r) for (m, p), r in routes.items() if "{" in p]

    def methods(self, path: str) -> list[str]:
        """The methods `path` answers (none: an unknown path)."""
        exact = [m for (m, p) in self._exact if p == path.rstrip("/")]
        if exact:
            return sorted(exact)
        segments = _segments(path)
        return sorted({m for m, t, _ in self._templates if _match(t, segments) is not None})

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for `method path` and its path parameters; raises ApiError 404 or 405."""
        route = self._exact.get((method, path.rstrip("/")))
        if route is not None:
            return route, {}
        segments = _segments(path)
        allowed = [m for (m, p) in self._exact if p == path.rstrip("/")]
        for want, template, candidate in [] if allowed else self._templates:
            params = _match(template, segments)
            if params is None:
                continue
            if want == method:
                return candidate, params
            allowed.append(want)
        if allowed:
            methods = sorted(set(allowed))
            raise wire.ApiError(
                405,
                f"Use {' or '.join(methods)} for {path}.",
                code="method_not_allowed",
                headers={"allow": ", ".join(methods)},
            )
        raise wire.ApiError(
            404, f"Unknown endpoint {method} {path}; see /api/docs/.", code="unknown_url"
        )
