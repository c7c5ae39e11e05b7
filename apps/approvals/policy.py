"""The autonomy policy: which level a tool call runs at (docs/architecture.md, "Approvals").

Most specific first: a rule for (agent, tool), then (agent, any tool), then the workspace's
default for the tool's strictest flag (a rule, else the playbook's default), else L5.
The playbook's defaults: destructive → L3; spends money → L3 (the amount shown); sends outside
the workspace → L3 for an agent's first `EXTERNAL_CONFIRM_USES` uses of the tool, then L4.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from apps.common.errors import ApplicationError
from apps.workspaces.models import Membership

from .models import ANY_TOOL, FLAGS, Approvers, AutonomyRule, AutonomySettings, Level, PolicyChange

EXTERNAL_CONFIRM_USES = 100

PLAYBOOK_DEFAULTS: dict[str, int] = {
    "destructive": Level.CONFIRM,
    "spends": Level.CONFIRM,
    "external": Level.CONFIRM,  # L4 after EXTERNAL_CONFIRM_USES uses (see `flag_default`)
    "writes": Level.AUTONOMOUS,
    "read_only": Level.AUTONOMOUS,
}


@dataclass(frozen=True, slots=True)
class Resolved:
    level: int
    approvers: str
    source: str  # "tool" | "agent" | "workspace" | "default"
    default: int  # the level without the agent's own rules (what a rule overrides)
    reason: str = ""


def flag_default(flag: str, *, uses: int = 0) -> int:
    level = PLAYBOOK_DEFAULTS.get(flag, Level.AUTONOMOUS)
    if flag == "external" and uses >= EXTERNAL_CONFIRM_USES:
        return Level.PLAN
    return level


def _strictest_flag(flags: Iterable[str]) -> str | None:
    present = set(flags)
    return next((flag for flag in FLAGS if flag in present), None)


def workspace_default(
    flags: Iterable[str], *, uses: int = 0, rules: dict | None = None
) -> Resolved:
    """The level for a tool with `flags` when its agent has no rule of its own."""
    rules = rules if rules is not None else _rules(None)
    levels: list[Resolved] = []
    for flag in set(flags) & set(FLAGS):
        rule = rules.get((None, flag))
        if rule is not None:
            levels.append(
                Resolved(rule.level, rule.approvers, "workspace", rule.level, rule.reason)
            )
        else:
            level = flag_default(flag, uses=uses)
            levels.append(Resolved(level, Approvers.ADMINS, "default", level))
    if not levels:
        return Resolved(Level.AUTONOMOUS, Approvers.ADMINS, "default", Level.AUTONOMOUS)
    return min(levels, key=lambda r: r.level)


def _rules(agent_id: int | None) -> dict[tuple[int | None, str], AutonomyRule]:
    rows = AutonomyRule.objects.filter(agent_id=None)
    if agent_id is not None:
        rows = rows | AutonomyRule.objects.filter(agent_id=agent_id)
    return {(r.agent_id, r.target): r for r in rows}


def level_for(*, agent_id: int, tool: str, flags: Iterable[str], uses: int = 0) -> Resolved:
    """The level `agent_id` calls `tool` at; `uses`: how often it ran this tool before."""
    flags = list(flags)
    rules = _rules(agent_id)
    default = workspace_default(flags, uses=uses, rules=rules)
    for target, source in ((tool, "tool"), (ANY_TOOL, "agent")):
        rule = rules.get((agent_id, target))
        if rule is not None:
            return Resolved(rule.level, rule.approvers, source, default.level, rule.reason)
    return default


def autonomy_settings() -> AutonomySettings:
    found, _ = AutonomySettings.objects.get_or_create(pk=1)
    return found


def rule_set(
    *,
    actor: Membership,
    agent_id: int | None,
    agent_name: str,
    target: str,
    level: int | None,
    approvers: str = Approvers.ADMINS,
    reason: str = "",
) -> AutonomyRule | None:
    """Set (or with `level` None, remove) a rule; owners and admins only; every change is
    logged. `target` is a tool name or `*` for an agent, a flag name for the workspace."""
    if not actor.can_manage:
        raise ApplicationError("Only owners and admins can change autonomy levels.", field="level")
    if level is not None and level not in Level.values:
        raise ApplicationError(f"Unknown level {level!r}: choose L1 to L5.", field="level")
    if approvers not in Approvers.values:
        raise ApplicationError(f"Unknown approvers {approvers!r}.", field="approvers")
    if agent_id is None and target not in FLAGS:
        raise ApplicationError(f"Unknown tool flag {target!r}.", field="target")
    reason = reason.strip()[:500]
    with transaction.atomic():
        rule = (
            AutonomyRule.objects.select_for_update()
            .filter(agent_id=agent_id, target=target)
            .first()
        )
        before = rule.level if rule else None
        if level is None:
            if rule is not None:
                rule.delete()
            rule = None
        elif rule is None:
            rule = AutonomyRule.objects.create(
                agent_id=agent_id,
                target=target,
                level=level,
                approvers=approvers,
                reason=reason,
                updated_by_id=actor.user_id,
            )
        else:
            rule.level, rule.approvers, rule.reason = level, approvers, reason
            rule.updated_by_id = actor.user_id
            rule.save()
        if before != level or rule is not None:
            PolicyChange.objects.create(
                changed_by_id=actor.user_id,
                changed_by_email=actor.user.email,
                agent_id=agent_id,
                agent_name=agent_name[:100],
                target=target,
                from_level=before,
                to_level=level,
                reason=reason,
            )
    return rule


def settings_set(
    *, actor: Membership, undo_window_seconds: int, action_ttl_seconds: int
) -> AutonomySettings:
    if not actor.can_manage:
        raise ApplicationError("Only owners and admins can change these windows.")
    found = autonomy_settings()
    found.undo_window_seconds = undo_window_seconds
    found.action_ttl_seconds = action_ttl_seconds
    found.save()
    return found
