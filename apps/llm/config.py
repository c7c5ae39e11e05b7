"""Django glue, part 1: build the gateway's plain-Python config from settings and the workspace.

The core never reads Django settings (STYLE §5); this module does, once, and hands it
dataclasses: the routing table, the platform providers, and per call a `CallScope` with the
workspace's limits, overrides and BYOK providers.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from django.conf import settings

from apps.common.crypto import fingerprint
from apps.workspaces.ai import ai_settings_get, provider_keys_decrypted
from apps.workspaces.models import AISettings, User, Workspace

from .core.budget import Scope
from .core.context import Actor, CallScope, Limits
from .core.pricing import NominalRate
from .core.providers.base import Provider
from .core.routing import LOCAL, Route, RoutingTable
from .ports import ports


@lru_cache(maxsize=1)
def routing_table() -> RoutingTable:
    """llm-routing.yaml, parsed once per process."""
    return RoutingTable.from_dict(yaml.safe_load(Path(settings.LLM_ROUTING_FILE).read_text()))


def nominal_rate() -> NominalRate:
    return NominalRate(
        input_per_mtok=settings.LLM_NOMINAL_INPUT_MICROS_PER_MTOK,
        output_per_mtok=settings.LLM_NOMINAL_OUTPUT_MICROS_PER_MTOK,
    )


def build_provider(name: str, *, api_key: str = "", base_url: str = "") -> Provider:
    """One provider client. SDK clients hold connection pools: build them once and reuse."""
    if name == "anthropic":
        from .core.providers.anthropic import AnthropicProvider

        return AnthropicProvider(api_key=api_key, base_url=base_url or None)
    if name in ("openai", "openai_compatible"):
        from .core.providers.openai import OpenAIProvider

        return OpenAIProvider(name=name, api_key=api_key or "not-needed", base_url=base_url or None)
    if name == LOCAL:
        from .core.providers.local import LocalProvider

        return LocalProvider(tokens_per_second=settings.LLM_LOCAL_TOKENS_PER_SECOND)
    raise ValueError(f"Unknown provider {name!r}.")


def platform_base_url(name: str) -> str:
    """This deployment's endpoint for an SDK provider ("" → the SDK's default). BYOK keys for
    `anthropic` and `openai` go there too: a proxy or regional endpoint applies to every key."""
    if name == "anthropic":
        return str(settings.ANTHROPIC_BASE_URL)
    if name == "openai":
        return str(settings.OPENAI_BASE_URL)
    return ""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """How to build one provider client. The key never shows in a repr or a traceback."""

    name: str
    api_key: str = field(default="", repr=False)
    base_url: str = ""

    @property
    def cache_key(self) -> tuple[str, str, str]:
        return (self.name, fingerprint(self.api_key) if self.api_key else "", self.base_url)


_clients_lock = threading.Lock()
# Per event loop: SDK clients pool connections that belong to the loop that opened them.
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, OrderedDict[tuple[str, str, str], Provider]
] = weakref.WeakKeyDictionary()
_CLIENTS_PER_LOOP = 256  # BYOK keys make this grow with workspaces: least recently used go


def _client(spec: ProviderSpec) -> Provider:
    """The client for `spec` on the running loop, built on first use there."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return build_provider(spec.name, api_key=spec.api_key, base_url=spec.base_url)
    with _clients_lock:
        clients = _clients.get(loop)
        if clients is None:
            for closed in [other for other in _clients if other.is_closed()]:
                del _clients[closed]  # their pools reference the loop: the weak key never dies
            clients = _clients[loop] = OrderedDict()
        found = clients.get(spec.cache_key)
        if found is None:
            found = build_provider(spec.name, api_key=spec.api_key, base_url=spec.base_url)
            clients[spec.cache_key] = found
            while len(clients) > _CLIENTS_PER_LOOP:
                _, evicted = clients.popitem(last=False)
                _close_later(loop, evicted)
        else:
            clients.move_to_end(spec.cache_key)
        return found


_closing: set[asyncio.Task[None]] = set()


def _close_later(loop: asyncio.AbstractEventLoop, provider: Provider) -> None:
    """Release an evicted client's connections. It is the least recently used of 256: a call
    still holding it would have to outlast 255 other keys' first calls on this loop."""
    close = getattr(provider, "aclose", None)
    if close is not None:
        task = loop.create_task(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


class LoopProviders(Mapping[str, Provider]):
    """`CallScope.providers` for one call: the configured provider names, each resolved to the
    running event loop's client when the gateway asks for it."""

    def __init__(self, specs: Mapping[str, ProviderSpec]):
        self._specs = dict(specs)

    def __getitem__(self, name: str) -> Provider:
        return _client(self._specs[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"LoopProviders({sorted(self._specs)})"


_platform_lock = threading.Lock()
_platform: dict[str, ProviderSpec] | None = None


def platform_providers() -> dict[str, ProviderSpec]:
    """Providers configured with the platform's own keys, plus the offline local model."""
    global _platform
    with _platform_lock:
        if _platform is None:
            found: dict[str, ProviderSpec] = {LOCAL: ProviderSpec(LOCAL)}
            if settings.ANTHROPIC_API_KEY:
                found["anthropic"] = ProviderSpec(
                    "anthropic", settings.ANTHROPIC_API_KEY, platform_base_url("anthropic")
                )
            if settings.OPENAI_API_KEY:
                found["openai"] = ProviderSpec(
                    "openai", settings.OPENAI_API_KEY, platform_base_url("openai")
                )
            if settings.LLM_OPENAI_COMPATIBLE_BASE_URL:
                found["openai_compatible"] = ProviderSpec(
                    "openai_compatible",
                    settings.LLM_OPENAI_COMPATIBLE_API_KEY,
                    settings.LLM_OPENAI_COMPATIBLE_BASE_URL,
                )
            _platform = found
        return _platform


def reset_providers() -> None:
    """Forget configured providers and built clients (tests that change keys or base URLs)."""
    global _platform
    with _platform_lock:
        _platform = None
    with _clients_lock:
        _clients.clear()


def timeout_for(feature: str) -> float:
    """The longest feature prefix in LLM_TIMEOUTS wins ("chat.title" → "chat")."""
    best = max((p for p in settings.LLM_TIMEOUTS if feature.startswith(p)), key=len)
    return float(settings.LLM_TIMEOUTS[best])


def _unless_empty(value: int | None, default: int) -> int:
    # 0 is a limit (it switches the workspace's AI off), not "unset".
    return default if value is None else value


def limits_for(workspace: Workspace, ai: AISettings) -> Limits:
    """The plan's limits (from the account port), with the workspace's AI settings taking
    precedence where set."""
    plan = ports.account.plan_limits(workspace)
    return Limits(
        workspace_day_tokens=_unless_empty(ai.daily_token_limit, plan.day_tokens),
        user_day_requests=_unless_empty(ai.user_daily_request_limit, plan.user_day_requests),
        # A per-call cap of 0 would refuse every request as malformed: treat it as unset.
        max_tokens=ai.max_tokens_per_call or settings.LLM_MAX_TOKENS_PER_CALL,
        max_input_tokens=settings.LLM_MAX_INPUT_TOKENS,
    )


def call_scope_for(
    *,
    workspace: Workspace,
    actor: Actor,
    feature: str,
    user: User | None = None,
    request_id: str | None = None,
    extra_scopes: tuple[Scope, ...] = (),
) -> CallScope:
    """Everything the gateway needs to run one call for `workspace` (reads the database)."""
    ai = ai_settings_get(workspace=workspace)
    providers = dict(platform_providers())
    byok: set[str] = set()
    for key in provider_keys_decrypted(workspace=workspace):
        base_url = key.base_url or platform_base_url(key.provider)
        providers[key.provider] = ProviderSpec(key.provider, key.key, base_url)
        byok.add(key.provider)
    overrides = {
        alias: Route(provider=str(spec["provider"]), model=str(spec["model"]))
        for alias, spec in (ai.model_overrides or {}).items()
        if isinstance(spec, dict) and spec.get("provider") and spec.get("model")
    }
    return CallScope(
        schema=workspace.schema_name,
        workspace_id=workspace.pk,
        actor=actor,
        feature=feature,
        routing=routing_table().with_overrides(overrides),
        providers=LoopProviders(providers),
        limits=limits_for(workspace, ai),
        user_id=user.pk if user is not None else None,
        byok=frozenset(byok),
        extra_scopes=extra_scopes,
        credit=ports.account.credit(workspace),
        timeout=timeout_for(feature),
        request_id=request_id,
    )
