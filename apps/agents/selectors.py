"""Agents, tasks and the tool audit: reads, run inside the workspace's schema. `access_*` answer
404 for missing and foreign alike (an id from another workspace's schema names nothing here).

Tenant tables keep public-schema user ids; the `*_rows` helpers resolve them to emails in one
query, as the Documents page does (apps/rag/selectors.py `document_rows`)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.http import Http404

from apps.approvals.models import ANY_TOOL, FLAGS, AutonomyRule, PendingAction
from apps.approvals.policy import flag_default, level_for
from apps.workspaces.models import Membership, User

from .models import Agent, Task, ToolAudit
from .tools.registry import tool_get, tool_names

FORMER_MEMBER = "a former member"
RISKY_FLAGS = frozenset({"destructive", "external"})  # marked in red where tools are listed


def _pk(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _emails(ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(User.objects.filter(pk__in=wanted).values_list("pk", "email"))


# --- agents ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolRow:
    """A tool as people see it: its label and what it does (flags). `known` is False for a
    name an agent still lists but the code no longer registers (it is skipped at run time)."""

    name: str
    label: str
    description: str
    flags: tuple[str, ...]
    known: bool = True

    @property
    def badges(self) -> list[tuple[str, str, bool]]:
        """(flag, words, risky) for each flag: ("read_only", "read only", False)."""
        return [(f, f.replace("_", " "), f in RISKY_FLAGS) for f in self.flags]


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent: Agent
    tools: list[ToolRow]
    conversations: int


def tool_row(name: str) -> ToolRow:
    spec = tool_get(name)
    if spec is None:
        return ToolRow(name=name, label=name, description="", flags=(), known=False)
    return ToolRow(
        name=name,
        label=spec.label or name,
        description=spec.description,
        flags=tuple(spec.flags),
    )


def tool_catalogue() -> list[ToolRow]:
    """Every registered tool, by name."""
    return [tool_row(name) for name in tool_names()]


def agent_list() -> QuerySet[Agent]:
    """The workspace's agents: the default Assistant first, then by name."""
    return Agent.objects.order_by("-is_default", "name", "pk")


def agent_rows() -> list[AgentRow]:
    """The agents with their tools and how many conversations each has."""
    agents = agent_list().annotate(conversation_count=Count("conversations"))
    return [
        AgentRow(
            agent=agent,
            tools=[tool_row(name) for name in agent.tools or []],
            conversations=agent.conversation_count,
        )
        for agent in agents
    ]


def agent_active_list() -> QuerySet[Agent]:
    """The agents a member may start a conversation with."""
    return agent_list().filter(status=Agent.Status.ACTIVE)


def access_agent(*, agent_id: object) -> Agent:
    found = Agent.objects.filter(pk=pk).first() if (pk := _pk(agent_id)) is not None else None
    if found is None:
        raise Http404("No such agent.")
    return found


def access_agent_by_ref(*, ref: object) -> Agent:
    """An agent named by its id or its slug (the chat's picker, API clients)."""
    text = str(ref).strip()
    pk = _pk(text)
    found = (
        Agent.objects.filter(pk=pk).first() if pk is not None else None
    ) or Agent.objects.filter(slug=text).exclude(slug="").first()
    if found is None:
        raise Http404("No such agent.")
    return found


def agent_conversation_count(*, agent: Agent) -> int:
    return agent.conversations.count()


# --- tasks -------------------------------------------------------------------------------------

TASK_FILTERS = ("all", "open", "done")


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task as listed: who it is for (by email) and, when an agent wrote it, which one."""

    task: Task
    person: str
    agent_name: str
    can_change: bool


def task_list(*, show: str = "all") -> QuerySet[Task]:
    """Open tasks first (soonest due first, undated after), then done ones, newest first.
    `show` is "open", "done" or anything else for all."""
    tasks = Task.objects.select_related("created_by_agent")
    if show in (Task.Status.OPEN, Task.Status.DONE):
        tasks = tasks.filter(status=show)
    open_first = Case(
        When(status=Task.Status.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return tasks.order_by(open_first, "due_on", "-created_at", "-pk")


def task_rows(tasks: Iterable[Task], *, membership: Membership) -> list[TaskRow]:
    tasks = list(tasks)
    emails = _emails(t.created_by_id for t in tasks)
    return [
        TaskRow(
            task=t,
            person=emails.get(t.created_by_id, FORMER_MEMBER),
            agent_name=t.created_by_agent.name if t.created_by_agent else "",
            can_change=task_can_change(task=t, membership=membership),
        )
        for t in tasks
    ]


def access_task(*, task_id: object) -> Task:
    found = Task.objects.filter(pk=pk).first() if (pk := _pk(task_id)) is not None else None
    if found is None:
        raise Http404("No such task.")
    return found


def task_can_change(*, task: Task, membership: Membership) -> bool:
    """Owners and admins change (complete, reopen, edit, delete) any task; a member only those
    they created, themselves or through an agent acting for them. The task tools hold agents
    to the same rule (an agent never exceeds the person it acts for)."""
    return membership.can_manage or task.created_by_id == membership.user_id


# --- the tool audit ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilters:
    agent_id: int | None = None
    tool: str = ""
    status: str = ""
    person_id: int | None = None
    start: dt.datetime | None = None  # included
    end: dt.datetime | None = None  # excluded


@dataclass(frozen=True, slots=True)
class AuditRow:
    audit: ToolAudit
    person: str
    action: PendingAction | None = None  # the approval it waited on or ran under


def audit_list(filters: AuditFilters) -> QuerySet[ToolAudit]:
    """The tool calls agents made or were refused, newest first."""
    rows = ToolAudit.objects.defer("result").order_by("-created_at", "-pk")
    if filters.agent_id is not None:
        rows = rows.filter(agent_id=filters.agent_id)
    if filters.tool:
        rows = rows.filter(tool=filters.tool)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.person_id is not None:
        rows = rows.filter(on_behalf_of_id=filters.person_id)
    if filters.start is not None:
        rows = rows.filter(created_at__gte=filters.start)
    if filters.end is not None:
        rows = rows.filter(created_at__lt=filters.end)
    return rows


def audit_rows(audits: Iterable[ToolAudit]) -> list[AuditRow]:
    audits = list(audits)
    emails = _emails(a.on_behalf_of_id for a in audits)
    action_ids = {a.approval_id for a in audits if a.approval_id}
    actions = {p.pk: p for p in PendingAction.objects.filter(pk__in=action_ids)}
    return [
        AuditRow(
            audit=a,
            person=emails.get(a.on_behalf_of_id, FORMER_MEMBER) if a.on_behalf_of_id else "—",
            action=actions.get(a.approval_id or 0),
        )
        for a in audits
    ]


def audit_for_trace(*, schema: str, trace_id: uuid.UUID | str) -> list[AuditRow]:
    """The tool calls a traced model call asked for, as executed (or refused), for support's
    trace page; read in the trace's workspace schema."""
    from django_tenants.utils import schema_context

    with schema_context(schema):
        audits = list(ToolAudit.objects.filter(trace_id=trace_id).defer("result").order_by("pk"))
        return audit_rows(audits)


# --- autonomy ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutonomyCell:
    """One (agent, tool) of the autonomy page: the level in force, where it comes from, and
    the default it overrides."""

    target: str  # a tool name, or "*" for the agent's any-tool rule, or a flag name
    label: str
    flags: list[str]
    level: int
    source: str  # tool | agent | workspace | default
    default: int
    approvers: str
    reason: str


def autonomy_grid() -> list[tuple[Agent, list[AutonomyCell]]]:
    """The agents that have tools, each with its any-tool row and one row per tool."""
    grid = []
    for agent in Agent.objects.exclude(tools=[]).order_by("name", "pk"):
        any_rule = AutonomyRule.objects.filter(agent_id=agent.pk, target=ANY_TOOL).first()
        cells = [
            AutonomyCell(
                target=ANY_TOOL,
                label="Any tool (unless set below)",
                flags=[],
                level=any_rule.level if any_rule else 0,
                source="agent" if any_rule else "default",
                default=0,
                approvers=any_rule.approvers if any_rule else "admins",
                reason=any_rule.reason if any_rule else "",
            )
        ]
        for name in agent.tools or []:
            spec = tool_get(name)
            flags = spec.flags if spec else []
            resolved = level_for(agent_id=agent.pk, tool=name, flags=flags)
            cells.append(
                AutonomyCell(
                    target=name,
                    label=(spec.label if spec else "") or name,
                    flags=flags,
                    level=resolved.level,
                    source=resolved.source,
                    default=resolved.default,
                    approvers=resolved.approvers,
                    reason=resolved.reason,
                )
            )
        grid.append((agent, cells))
    return grid


def autonomy_defaults() -> list[AutonomyCell]:
    """The workspace's level per tool flag (its rule, else the playbook's)."""
    rules = {r.target: r for r in AutonomyRule.objects.filter(agent_id=None)}
    cells = []
    for flag in FLAGS:
        rule = rules.get(flag)
        playbook = flag_default(flag)
        cells.append(
            AutonomyCell(
                target=flag,
                label=flag.replace("_", " "),
                flags=[flag],
                level=rule.level if rule else playbook,
                source="workspace" if rule else "default",
                default=playbook,
                approvers=rule.approvers if rule else "admins",
                reason=rule.reason if rule else "",
            )
        )
    return cells
