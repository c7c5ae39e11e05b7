"""What the layers above tenancy plug into workspace creation, at their AppConfig.ready() (see
docs/architecture.md, "Layers and ports").

A new workspace is more than a schema: billing grants its plan's credit for the month, and later
layers add their own starting rows. `workspace_create` runs every registered provisioner inside
its one atomic block, so a failure anywhere leaves no workspace, no schema and no grant — and
every way of creating a workspace (sign-up, "create a workspace", staff, the system workspaces)
gets the same result without this layer importing the ones above it.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import Workspace

Provisioner = Callable[[Workspace], object]

_provisioners: dict[str, Provisioner] = {}


def provisioner_register(name: str, provisioner: Provisioner) -> None:
    """Run `provisioner(workspace)` in every workspace creation's transaction (by name, so a
    repeated ready() replaces rather than duplicates it)."""
    _provisioners[name] = provisioner


def provisioners() -> list[Provisioner]:
    return list(_provisioners.values())
