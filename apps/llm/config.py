"""Django glue, part 1: build the gateway's plain-Python config from settings and the workspace.

The core never reads Django settings (STYLE §5); this module does, once, and hands it
dataclasses: the routing table, the platform providers, and per call a `CallScope` with the
workspace's limits, overrides and BYOK providers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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


_platform_lock = threading.Lock()
_platform: dict[str, Provider] | None = None


def platform_providers() -> dict[str, Provider]:
    """Providers configured with the platform's own keys, plus the offline local model."""
    global _platform
    with _platform_lock:
        if _platform is None:
            found: dict[str, Provider] = {LOCAL: build_provider(LOCAL)}
            if settings.ANTHROPIC_API_KEY:
                found["anthropic"] = build_provider(
                    "anthropic",
                    api_key=settings.ANTHROPIC_API_KEY,
                    base_url=settings.ANTHROPIC_BASE_URL,
                )
            if settings.OPENAI_API_KEY:
                found["openai"] = build_provider(
                    "openai", api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL
                )
            if settings.LLM_OPENAI_COMPATIBLE_BASE_URL:
                found["openai_compatible"] = build_provider(
                    "openai_compatible",
                    api_key=settings.LLM_OPENAI_COMPATIBLE_API_KEY,
                    base_url=settings.LLM_OPENAI_COMPATIBLE_BASE_URL,
                )
            _platform = found
        return _platform


def reset_providers() -> None:
    """Forget built clients (tests that change keys or base URLs)."""
    global _platform
    with _platform_lock:
        _platform = None
        _byok.clear()


# BYOK clients, keyed by (workspace, provider, key fingerprint): a changed key builds a new one.
_byok: OrderedDict[tuple[int, str, str, str], Provider] = OrderedDict()
_BYOK_CACHE_SIZE = 256


def _byok_provider(workspace_id: int, provider: str, key: str, base_url: str) -> Provider:
    cache_key = (workspace_id, provider, fingerprint(key), base_url)
    with _platform_lock:
        found = _byok.get(cache_key)
        if found is None:
            found = build_provider(provider, api_key=key, base_url=base_url)
            _byok[cache_key] = found
            while len(_byok) > _BYOK_CACHE_SIZE:
                _byok.popitem(last=False)
        else:
            _byok.move_to_end(cache_key)
        return found


def timeout_for(feature: str) -> float:
    """The longest feature prefix in LLM_TIMEOUTS wins ("chat.title" → "chat")."""
    best = max((p for p in settings.LLM_TIMEOUTS if feature.startswith(p)), key=len)
    return float(settings.LLM_TIMEOUTS[best])


def limits_for(workspace: Workspace, ai: AISettings) -> Limits:
    plan = settings.LLM_PLAN_LIMITS.get(workspace.plan, settings.LLM_PLAN_LIMITS["free"])
    return Limits(
        workspace_day_tokens=ai.daily_token_limit or plan["day_tokens"],
        user_day_requests=ai.user_daily_request_limit or plan["user_day_requests"],
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
        providers[key.provider] = _byok_provider(workspace.pk, key.provider, key.key, key.base_url)
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
        providers=providers,
        limits=limits_for(workspace, ai),
        user_id=user.pk if user is not None else None,
        byok=frozenset(byok),
        extra_scopes=extra_scopes,
        timeout=timeout_for(feature),
        request_id=request_id,
    )
