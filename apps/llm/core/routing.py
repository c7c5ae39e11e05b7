"""Aliases → routes. Business code names an alias (`fast`, `smart`, …); this resolves it to a
primary and a fallback {provider, model}, or to the offline local model when no route's
provider is configured."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, replace
from typing import Any

from .errors import InvalidRequestError, UnknownAliasError

LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class AliasRoutes:
    """What one alias resolves to. `offline` answers when neither route is configured."""

    alias: str
    primary: Route
    fallback: Route | None
    offline: Route
    kind: str = "chat"  # chat | embed
    max_tokens: int = 4096
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResolvedRoutes:
    """The routes one call may try, in order: primary, then (once) fallback."""

    alias: str
    routes: tuple[Route, ...]
    max_tokens: int

    @property
    def primary(self) -> Route:
        return self.routes[0]

    @property
    def offline(self) -> bool:
        return self.routes[0].provider == LOCAL


def _route(raw: Any, where: str) -> Route:
    if not isinstance(raw, Mapping) or not raw.get("provider") or not raw.get("model"):
        raise ValueError(f"{where} must be a mapping with `provider` and `model`.")
    return Route(provider=str(raw["provider"]), model=str(raw["model"]))


@dataclass(frozen=True, slots=True)
class RoutingTable:
    aliases: Mapping[str, AliasRoutes]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutingTable:
        """Parse the `aliases:` section of llm-routing.yaml; errors name the bad entry."""
        aliases: dict[str, AliasRoutes] = {}
        raw_aliases = data.get("aliases")
        if not isinstance(raw_aliases, Mapping) or not raw_aliases:
            raise ValueError("llm-routing.yaml needs a non-empty `aliases:` mapping.")
        for name, spec in raw_aliases.items():
            if not isinstance(spec, Mapping):
                raise ValueError(f"aliases.{name} must be a mapping.")
            aliases[str(name)] = AliasRoutes(
                alias=str(name),
                primary=_route(spec.get("primary"), f"aliases.{name}.primary"),
                fallback=_route(spec["fallback"], f"aliases.{name}.fallback")
                if spec.get("fallback")
                else None,
                offline=_route(spec.get("offline"), f"aliases.{name}.offline"),
                kind=str(spec.get("kind", "chat")),
                max_tokens=int(spec.get("max_tokens", 4096)),
                description=str(spec.get("description", "")),
            )
        return cls(aliases=aliases)

    def with_overrides(self, overrides: Mapping[str, Route]) -> RoutingTable:
        """A workspace's model override replaces an alias's primary route."""
        if not overrides:
            return self
        merged = dict(self.aliases)
        for alias, route in overrides.items():
            if alias in merged:
                merged[alias] = replace(merged[alias], primary=route)
        return RoutingTable(aliases=merged)

    def resolve(self, alias: str, *, configured: Set[str], kind: str = "chat") -> ResolvedRoutes:
        """The routes to try for `alias`, keeping only providers in `configured`.

        With none configured the offline local model answers (the default without keys).
        Embedding aliases never fall back to another model: vectors of two models must never
        be mixed in one index.
        """
        spec = self.aliases.get(alias)
        if spec is None:
            known = ", ".join(sorted(a for a, s in self.aliases.items() if s.kind == kind))
            raise UnknownAliasError(
                f"Unknown model alias “{alias}”; use one of: {known}.", field="alias"
            )
        if spec.kind != kind:
            raise InvalidRequestError(
                f"“{alias}” is a {spec.kind} alias, not a {kind} one.", field="alias"
            )
        routes = [
            r for r in (spec.primary, spec.fallback) if r is not None and r.provider in configured
        ]
        if kind == "embed":
            routes = routes[:1]
        if not routes:
            routes = [spec.offline]
        return ResolvedRoutes(alias=alias, routes=tuple(routes[:2]), max_tokens=spec.max_tokens)

    def names(self, kind: str | None = None) -> list[str]:
        return sorted(a for a, s in self.aliases.items() if kind is None or s.kind == kind)
