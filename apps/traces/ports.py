"""What the layers above the trace store plug into it, at their AppConfig.ready() (see
docs/architecture.md, "Layers and ports").

- A *stored-calls listener* sees each batch of freshly stored calls after its commit (evals
  sample a share as eval candidates). It must not raise: call records never wait on it.
- A *masked copy* is a table above the store that keeps masked trace content (eval
  candidates): retention deletes its rows with the masked tier, and counts them by its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from apps.workspaces.models import Workspace

from .models import LlmCallLog, LlmTrace

StoredCalls = list[tuple[LlmCallLog, LlmTrace]]
StoredCallsListener = Callable[[StoredCalls], object]


@dataclass(frozen=True, slots=True)
class MaskedCopy:
    name: str  # counted as `<name>_deleted` by retention
    label: str  # how people read it ("eval candidates")
    rows: Callable[[Workspace], QuerySet[Any]]  # the workspace's rows, with a `created_at`


_listeners: dict[str, StoredCallsListener] = {}
_copies: dict[str, MaskedCopy] = {}


def stored_calls_listener_register(name: str, listener: StoredCallsListener) -> None:
    _listeners[name] = listener


def stored_calls_listeners() -> list[StoredCallsListener]:
    return list(_listeners.values())


def masked_copy_register(copy: MaskedCopy) -> None:
    _copies[copy.name] = copy


def masked_copies() -> list[MaskedCopy]:
    return list(_copies.values())
