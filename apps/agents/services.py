"""Agents: writes. The workspace's default agent is the Assistant that chat answers with.

Owners and admins manage agents and the hosts agents may fetch; members manage their own tasks
(owners and admins any). Each service checks who acts (`actor`, a membership of this
workspace), so no edge can skip the rule."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils.text import slugify

from apps.common.errors import ApplicationError, PermissionDeniedError
from apps.llm.services import alias_names
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.models import Membership, Workspace

from .models import Agent, Task
from .selectors import agent_conversation_count, task_can_change
from .tools.registry import tool_get

DEFAULT_SLUG = "assistant"  # the default Assistant's; no other agent may take it
SLUG_MAX = 60
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NAME_MAX = 100
DESCRIPTION_MAX = 300
INSTRUCTIONS_MAX = 8_000
MAX_STEPS_RANGE = (1, 50)
LIMIT_MAX_MICROS = 100_000 * 1_000_000  # $100,000: beyond it a limit is a typo
TASK_TITLE_MAX = 200
TASK_NOTES_MAX = 5_000
HTTP_DOMAINS_MAX = 50


def agent_default() -> Agent:
    """The workspace's default agent, created on first use."""
    agent = Agent.objects.filter(is_default=True).first()
    if agent is not None:
        return agent
    with transaction.atomic():
        agent, _ = Agent.objects.get_or_create(
            is_default=True,
            defaults={
                "name": "Assistant",
                "slug": "assistant",
                "alias": settings.CHAT_DEFAULT_ALIAS,
            },
        )
    return agent


def _require_manager(actor: Membership, what: str) -> None:
    if not actor.can_manage:
        raise PermissionDeniedError(f"Only owners and admins can {what}.")


# --- agents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentFields:
    """What an owner or admin sets on an agent. Money in micro-dollars; None: no limit."""

    name: str
    slug: str = ""  # empty: made from the name
    description: str = ""
    instructions: str = ""
    alias: str = "smart"
    tools: Sequence[str] = ()
    daily_spend_limit_micros: int | None = None
    max_steps: int = 8
    max_run_cost_micros: int | None = None


def _clean_slug(fields: AgentFields, *, agent: Agent | None) -> str:
    if agent is not None and agent.is_default:
        if fields.slug.strip() not in ("", agent.slug):
            raise ApplicationError(
                f"The default Assistant keeps its slug “{agent.slug}”.", field="slug"
            )
        return agent.slug
    slug = fields.slug.strip().lower()
    if not slug:
        slug = slugify(fields.name)[:SLUG_MAX].strip("-")
        if not slug:
            raise ApplicationError(
                "The name makes no slug (it has no letters or digits): type one.", field="slug"
            )
    if len(slug) > SLUG_MAX:
        raise ApplicationError(
            f"Keep the slug to {SLUG_MAX} characters (this one has {len(slug)}).", field="slug"
        )
    if not SLUG_RE.match(slug):
        raise ApplicationError(
            "Use lowercase letters, digits and single hyphens in the slug, starting and ending "
            "with a letter or digit.",
            field="slug",
        )
    if slug == DEFAULT_SLUG:
        raise ApplicationError(
            f"“{DEFAULT_SLUG}” is the default Assistant's slug; choose another.", field="slug"
        )
    taken = Agent.objects.filter(slug=slug)
    if agent is not None:
        taken = taken.exclude(pk=agent.pk)
    if taken.exists():
        raise ApplicationError(
            f"Another agent has the slug “{slug}”; choose another.", field="slug"
        )
    return slug


def _clean_tools(tools: Iterable[str], *, default: bool) -> list[str]:
    names = list(dict.fromkeys(str(t) for t in tools))  # de-duplicated, in order
    for name in names:
        if tool_get(name) is None:
            raise ApplicationError(f"“{name}” is not a tool of this platform.", field="tools")
    if default and names:
        raise ApplicationError(
            "The default Assistant has no tools; create another agent to use tools.",
            field="tools",
        )
    return names


def _clean_limit(micros: int | None, field: str, what: str) -> int | None:
    if micros is None:
        return None
    if micros <= 0:
        raise ApplicationError(
            f"The {what} must be more than $0; leave it empty for no limit.", field=field
        )
    if micros > LIMIT_MAX_MICROS:
        raise ApplicationError(
            f"The {what} can be at most ${LIMIT_MAX_MICROS // 1_000_000:,}.", field=field
        )
    return micros


def _clean_text(value: str, *, field: str, label: str, limit: int, required: bool = False) -> str:
    value = value.replace("\x00", "").strip()
    if required and not value:
        raise ApplicationError(f"Give the agent a {label}.", field=field)
    if len(value) > limit:
        raise ApplicationError(
            f"Keep the {label} to {limit:,} characters (it has {len(value):,}).", field=field
        )
    return value


def _clean(fields: AgentFields, *, agent: Agent | None) -> AgentFields:
    """`fields` checked and normalised; ApplicationError naming the field otherwise."""
    default = agent is not None and agent.is_default
    name = _clean_text(fields.name, field="name", label="name", limit=NAME_MAX, required=True)
    aliases = alias_names("chat")
    if fields.alias not in aliases:
        raise ApplicationError(
            f"Unknown model alias “{fields.alias}”; use one of: {', '.join(aliases)}.",
            field="alias",
        )
    low, high = MAX_STEPS_RANGE
    if not low <= fields.max_steps <= high:
        raise ApplicationError(
            f"Max steps is a whole number from {low} to {high}.", field="max_steps"
        )
    return replace(
        fields,
        name=name,
        slug=_clean_slug(replace(fields, name=name), agent=agent),
        description=_clean_text(
            fields.description, field="description", label="description", limit=DESCRIPTION_MAX
        ),
        instructions=_clean_text(
            fields.instructions, field="instructions", label="instructions", limit=INSTRUCTIONS_MAX
        ),
        tools=_clean_tools(fields.tools, default=default),
        daily_spend_limit_micros=_clean_limit(
            fields.daily_spend_limit_micros, "daily_spend_limit", "daily spend limit"
        ),
        max_run_cost_micros=_clean_limit(
            fields.max_run_cost_micros, "max_run_cost", "cost cap per run"
        ),
    )


def _save(agent: Agent, fields: AgentFields) -> Agent:
    for name in (
        "name",
        "slug",
        "description",
        "instructions",
        "alias",
        "daily_spend_limit_micros",
        "max_steps",
        "max_run_cost_micros",
    ):
        setattr(agent, name, getattr(fields, name))
    agent.tools = list(fields.tools)
    try:
        with transaction.atomic():
            agent.save()
    except IntegrityError as exc:  # another admin took the slug since the check
        raise ApplicationError(
            f"Another agent has the slug “{fields.slug}”; choose another.", field="slug"
        ) from exc
    return agent


def agent_create(*, actor: Membership, fields: AgentFields) -> Agent:
    """A new active agent with these settings (never a default one)."""
    _require_manager(actor, "create agents")
    fields = _clean(fields, agent=None)
    return _save(Agent(created_by_id=actor.user_id), fields)


def agent_update(*, actor: Membership, agent: Agent, fields: AgentFields) -> Agent:
    """Change an agent's settings. The default Assistant keeps its slug and has no tools."""
    _require_manager(actor, "change agents")
    fields = _clean(fields, agent=agent)
    return _save(agent, fields)


def agent_set_status(*, actor: Membership, agent: Agent, status: str) -> Agent:
    """Pause (no new messages or runs; history stays readable) or resume an agent."""
    _require_manager(actor, "pause or resume agents")
    if status not in Agent.Status.values:
        raise ApplicationError(f"Unknown status “{status}”.", field="status")
    if agent.is_default and status != Agent.Status.ACTIVE:
        raise ApplicationError(
            "The default Assistant cannot be paused: every member's chat starts with it."
        )
    agent.status = status
    agent.save(update_fields=["status", "updated_at"])
    return agent


def agent_delete(*, actor: Membership, agent: Agent) -> None:
    """Delete an agent that has no conversations.

    Conversations are their members' private history, which an admin cannot even read: they
    are never deleted along with an agent. An agent with conversations is paused instead
    (agent_set_status). Its tool audit stays (no foreign key); tasks it wrote keep their
    author and lose the agent's name."""
    _require_manager(actor, "delete agents")
    if agent.is_default:
        raise ApplicationError("The default Assistant cannot be deleted.")
    count = agent_conversation_count(agent=agent)
    if count:
        raise ApplicationError(_has_conversations(agent, count))
    try:
        with transaction.atomic():
            agent.delete()
    except ProtectedError as exc:  # a conversation started since the check
        raise ApplicationError(_has_conversations(agent, 1)) from exc


def _has_conversations(agent: Agent, count: int) -> str:
    noun = "conversation" if count == 1 else "conversations"
    return (
        f"{agent.name} has {count:,} {noun}, which belong to the members who had them: it "
        "cannot be deleted. Pause it instead: no one can message it, and the history stays."
    )


# --- tasks -------------------------------------------------------------------------------------


def task_create(
    *, actor: Membership, title: str, notes: str = "", due_on: dt.date | None = None
) -> Task:
    """A task of the acting member's (open)."""
    title = title.replace("\x00", "").strip()
    if not title:
        raise ApplicationError("Give the task a title.", field="title")
    if len(title) > TASK_TITLE_MAX:
        raise ApplicationError(
            f"Keep the title to {TASK_TITLE_MAX} characters (it has {len(title)}).", field="title"
        )
    notes = notes.replace("\x00", "").strip()
    if len(notes) > TASK_NOTES_MAX:
        raise ApplicationError(
            f"Keep the notes to {TASK_NOTES_MAX:,} characters (they have {len(notes):,}).",
            field="notes",
        )
    return Task.objects.create(title=title, notes=notes, due_on=due_on, created_by_id=actor.user_id)


def _require_task_change(actor: Membership, task: Task) -> None:
    if not task_can_change(task=task, membership=actor):
        raise PermissionDeniedError(
            f"“{task.title}” belongs to someone else; only its author, owners and admins may "
            "change it."
        )


def task_set_status(*, actor: Membership, task: Task, status: str) -> Task:
    """Mark a task done, or open again."""
    _require_task_change(actor, task)
    if status not in Task.Status.values:
        raise ApplicationError(f"Unknown task status “{status}”.", field="status")
    task.status = status
    task.save(update_fields=["status", "updated_at"])
    return task


def task_delete(*, actor: Membership, task: Task) -> None:
    _require_task_change(actor, task)
    task.delete()


# --- hosts agents may fetch (AI settings) ------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _host_error(line: int, entry: str) -> str | None:
    """Why `entry` (lower-cased) cannot be a host on the list, or None."""
    where = f"Line {line}: “{entry}”"
    if "://" in entry or "/" in entry:
        return f"{where} is a URL; write the host only, e.g. example.com."
    if entry.startswith("*."):
        return f"{where}: write “{entry[1:]}” (a leading dot) to allow the subdomains."
    if not entry.isascii():
        return f"{where}: write the host in its ASCII (xn--) form."
    try:
        ipaddress.ip_address(entry)
        return None
    except ValueError:
        pass
    if ":" in entry:
        return f"{where}: write the host without a port."
    name = entry[1:] if entry.startswith(".") else entry
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"{where} is not a host name (letters, digits, hyphens and dots)."
    if entry.startswith(".") and len(labels) < 2:
        return f"{where} would allow a whole top-level domain; name a domain, e.g. .example.com."
    return None


def http_allowed_domains_validate(entries: Iterable[str]) -> list[str]:
    """The hosts agents' `http_get` may fetch, checked and normalised: one host name (or an
    IP address) each, or ".example.com" for every subdomain of example.com, as the fetcher
    matches them (apps/common/fetch.py `_check_host`). Empty entries are skipped, duplicates
    dropped; at most HTTP_DOMAINS_MAX."""
    hosts: list[str] = []
    for line, raw in enumerate(entries, start=1):
        entry = str(raw).strip().lower().rstrip(".")
        if not entry:
            continue
        if (error := _host_error(line, entry)) is not None:
            raise ApplicationError(error, field="http_allowed_domains")
        if entry not in hosts:
            hosts.append(entry)
    if len(hosts) > HTTP_DOMAINS_MAX:
        raise ApplicationError(
            f"List at most {HTTP_DOMAINS_MAX} hosts (this list has {len(hosts)}).",
            field="http_allowed_domains",
        )
    return hosts


def workspace_http_domains_set(
    *, actor: Membership, workspace: Workspace, entries: Iterable[str]
) -> list[str]:
    """Replace the list of hosts agents may fetch; an empty list allows none."""
    _require_manager(actor, "choose the hosts agents may fetch")
    hosts = http_allowed_domains_validate(entries)
    ai = ai_settings_get(workspace=workspace)
    ai.http_allowed_domains = hosts
    ai.save(update_fields=["http_allowed_domains", "updated_at"])
    return hosts
