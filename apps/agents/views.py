"""The Agents, Tasks and tool-audit pages on a workspace host (members only: the middleware let
them in).

Every member sees the agents; owners and admins create, edit, pause and delete them, choose
the hosts agents may fetch, register external MCP servers, and read the audit of tool calls. Members add tasks and change
their own; owners and admins any. The services hold the rules; a member's mutation is refused
here first (403) so that no form is even read for them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.approvals.models import Approvers, Level, PolicyChange
from apps.approvals.policy import autonomy_settings, rule_set, settings_set
from apps.common.errors import ApplicationError, NotFoundError, PermissionDeniedError
from apps.workspaces.ai import ai_settings_get
from apps.workspaces.forms import attach_error
from apps.workspaces.http import WorkspaceRequest
from apps.workspaces.selectors import membership_list

from . import services
from .forms import (
    TASK_FILTER_CHOICES,
    AgentForm,
    AuditFilterForm,
    AutonomyRuleForm,
    AutonomySettingsForm,
    HttpDomainsForm,
    McpServerForm,
    TaskFilterForm,
    TaskForm,
    TaskStatusForm,
)
from .mcp_remote import services as mcp_remote
from .models import Agent, AgentRun, ExternalMcpServer, Task
from .runs.services import access_run, run_cancel, run_start, run_visible
from .selectors import (
    access_agent,
    access_task,
    agent_conversation_count,
    agent_list,
    agent_rows,
    audit_list,
    audit_rows,
    autonomy_defaults,
    autonomy_grid,
    task_list,
    task_rows,
)
from .tools.undo import tool_undo

TASKS_PAGE_SIZE = 50
AUDIT_PAGE_SIZE = 50


def _refused(request: WorkspaceRequest, message: str) -> HttpResponse:
    return render(request, "agents/refused.html", {"message": message}, status=403)


def _managers_only(request: WorkspaceRequest, what: str) -> HttpResponse | None:
    if request.membership.can_manage:
        return None
    return _refused(request, f"Only owners and admins of {request.workspace.name} can {what}.")


# --- agents ------------------------------------------------------------------------------------


def agents_page(
    request: WorkspaceRequest,
    *,
    domains_form: HttpDomainsForm | None = None,
    mcp_form: McpServerForm | None = None,
    status: int = 200,
) -> HttpResponse:
    services.agent_default()  # listed from the first visit, as the chat creates it
    context: dict[str, Any] = {"rows": agent_rows(), "can_manage": request.membership.can_manage}
    if request.membership.can_manage:
        hosts = ai_settings_get(workspace=request.workspace).http_allowed_domains or []
        context["domains_form"] = domains_form or HttpDomainsForm(
            initial={"http_allowed_domains": "\n".join(str(h) for h in hosts)}
        )
        context["mcp_servers"] = mcp_remote.mcp_server_list()
        context["mcp_form"] = mcp_form or McpServerForm()
    return render(request, "agents/agents.html", context, status=status)


def _agent_form_page(
    request: WorkspaceRequest, form: AgentForm, *, agent: Agent | None, status: int = 200
) -> HttpResponse:
    return render(request, "agents/agent_form.html", {"form": form, "agent": agent}, status=status)


def agent_new(request: WorkspaceRequest) -> HttpResponse:
    """GET: the empty form; POST: create the agent."""
    if (denied := _managers_only(request, "create agents")) is not None:
        return denied
    if request.method != "POST":
        return _agent_form_page(request, AgentForm(), agent=None)
    form = AgentForm(request.POST)
    if not form.is_valid():
        return _agent_form_page(request, form, agent=None, status=400)
    try:
        agent = services.agent_create(actor=request.membership, fields=form.agent_fields())
    except ApplicationError as exc:
        attach_error(form, exc)
        return _agent_form_page(request, form, agent=None, status=exc.status)
    messages.success(request, f"Created {agent.name} (“{agent.slug}”).")
    return redirect("agents")


def agent_edit(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    """GET: the agent's form; POST: save it."""
    agent = access_agent(agent_id=agent_id)
    if (denied := _managers_only(request, "change agents")) is not None:
        return denied
    if request.method != "POST":
        return _agent_form_page(request, AgentForm(agent=agent), agent=agent)
    form = AgentForm(request.POST, agent=agent)
    if not form.is_valid():
        return _agent_form_page(request, form, agent=agent, status=400)
    try:
        services.agent_update(actor=request.membership, agent=agent, fields=form.agent_fields())
    except ApplicationError as exc:
        attach_error(form, exc)
        agent.refresh_from_db()  # the page names the agent as saved, not as typed
        return _agent_form_page(request, form, agent=agent, status=exc.status)
    messages.success(request, f"Saved {agent.name}.")
    return redirect("agents")


@require_POST
def agent_status(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    """Pause or resume (`status`: paused / active)."""
    agent = access_agent(agent_id=agent_id)
    if (denied := _managers_only(request, "pause or resume agents")) is not None:
        return denied
    try:
        services.agent_set_status(
            actor=request.membership, agent=agent, status=request.POST.get("status", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return agents_page(request, status=exc.status)
    if agent.is_active:
        messages.success(request, f"{agent.name} is active again.")
    else:
        messages.success(
            request,
            f"Paused {agent.name}: no one can message it until it is resumed; its "
            "conversations stay readable.",
        )
    return redirect("agents")


def agent_delete(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    """GET asks for confirmation (or explains why the agent cannot go); POST deletes."""
    agent = access_agent(agent_id=agent_id)
    if (denied := _managers_only(request, "delete agents")) is not None:
        return denied
    context = {"agent": agent, "conversations": agent_conversation_count(agent=agent)}
    if request.method != "POST":
        return render(request, "agents/agent_delete.html", context)
    name = agent.name
    try:
        services.agent_delete(actor=request.membership, agent=agent)
    except ApplicationError as exc:
        context |= {"error": exc.message, "conversations": agent_conversation_count(agent=agent)}
        return render(request, "agents/agent_delete.html", context, status=409)
    messages.success(request, f"Deleted {name}. Its tool audit stays on the audit page.")
    return redirect("agents")


@require_POST
def http_domains(request: WorkspaceRequest) -> HttpResponse:
    """Replace the hosts agents' `http_get` may fetch (AI settings)."""
    if (denied := _managers_only(request, "choose the hosts agents may fetch")) is not None:
        return denied
    form = HttpDomainsForm(request.POST)
    if not form.is_valid():
        return agents_page(request, domains_form=form, status=400)
    try:
        hosts = services.workspace_http_domains_set(
            actor=request.membership, workspace=request.workspace, entries=form.entries()
        )
    except ApplicationError as exc:
        attach_error(form, exc)
        return agents_page(request, domains_form=form, status=exc.status)
    if hosts:
        messages.success(
            request, f"Agents may fetch from {len(hosts)} host(s): {', '.join(hosts)}."
        )
    else:
        messages.success(request, "Agents may fetch from no host.")
    return redirect(reverse("agents") + "#web-access")


# --- external MCP servers ----------------------------------------------------------------------


def _back_to_mcp_servers() -> HttpResponse:
    return redirect(reverse("agents") + "#mcp-servers")


def _mcp_refresh_message(request: WorkspaceRequest, server: ExternalMcpServer) -> None:
    if server.last_error:
        messages.warning(request, f"{server.name}: {server.last_error}")
    else:
        messages.success(request, f"{server.name} offers {len(server.tools)} tool(s).")


@require_POST
def mcp_server_add(request: WorkspaceRequest) -> HttpResponse:
    """Register an external MCP server and list its tools."""
    if (denied := _managers_only(request, "add MCP servers")) is not None:
        return denied
    form = McpServerForm(request.POST)
    if not form.is_valid():
        return agents_page(request, mcp_form=form, status=400)
    try:
        server = mcp_remote.mcp_server_register(
            actor=request.membership, fields=form.server_fields()
        )
    except ApplicationError as exc:
        attach_error(form, exc)
        return agents_page(request, mcp_form=form, status=exc.status)
    _mcp_refresh_message(request, server)
    return _back_to_mcp_servers()


@require_POST
def mcp_server_refresh(request: WorkspaceRequest, server_id: int) -> HttpResponse:
    server = mcp_remote.access_mcp_server(server_id=server_id)
    if (denied := _managers_only(request, "refresh MCP servers")) is not None:
        return denied
    server = mcp_remote.mcp_server_refresh(actor=request.membership, server=server)
    _mcp_refresh_message(request, server)
    return _back_to_mcp_servers()


@require_POST
def mcp_server_delete(request: WorkspaceRequest, server_id: int) -> HttpResponse:
    server = mcp_remote.access_mcp_server(server_id=server_id)
    if (denied := _managers_only(request, "remove MCP servers")) is not None:
        return denied
    mcp_remote.mcp_server_delete(actor=request.membership, server=server)
    messages.success(
        request,
        f"Removed {server.name}. Agents that listed its tools show them as unknown until edited.",
    )
    return _back_to_mcp_servers()


# --- the audit ---------------------------------------------------------------------------------


def audit_page(request: WorkspaceRequest) -> HttpResponse:
    if (denied := _managers_only(request, "read the audit of agents' tool calls")) is not None:
        return denied
    form = AuditFilterForm(
        request.GET or None,
        agents=[(a.pk, a.name) for a in agent_list()],
        people=[(m.user_id, m.user.email) for m in membership_list(workspace=request.workspace)],
    )
    page = Paginator(audit_list(form.filters()), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": audit_rows(page.object_list),
        "query": query.urlencode(),
    }
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(request, "agents/audit.html", context, status=status)


# --- autonomy ----------------------------------------------------------------------------------


def autonomy_page(
    request: WorkspaceRequest,
    *,
    settings_form: AutonomySettingsForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    """Owners and admins: the level of every agent × tool, the default it overrides, the
    workspace's defaults per tool flag, the windows, and the log of every change."""
    if (denied := _managers_only(request, "set agents' autonomy levels")) is not None:
        return denied
    current = autonomy_settings()
    context = {
        "grid": autonomy_grid(),
        "defaults": autonomy_defaults(),
        "levels": Level.choices,
        "approvers": Approvers.choices,
        "settings_form": settings_form
        or AutonomySettingsForm(
            initial={
                "undo_window_minutes": current.undo_window_seconds // 60,
                "action_ttl_hours": current.action_ttl_seconds // 3600,
            }
        ),
        "changes": PolicyChange.objects.all()[:50],
        "error": error,
    }
    return render(request, "agents/autonomy.html", context, status=status)


@require_POST
def autonomy_rule(request: WorkspaceRequest) -> HttpResponse:
    if (denied := _managers_only(request, "set agents' autonomy levels")) is not None:
        return denied
    form = AutonomyRuleForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return autonomy_page(request, error=problems, status=400)
    data = form.cleaned_data
    agent = data.get("agent_obj")
    try:
        rule_set(
            actor=request.membership,
            agent_id=agent.pk if agent else None,
            agent_name=agent.name if agent else "",
            target=data["target"],
            level=data["level"],
            approvers=data["approvers"],
            reason=data["reason"],
        )
    except ApplicationError as exc:
        return autonomy_page(request, error=exc.message, status=400)
    who = agent.name if agent else "the workspace"
    level = f"L{data['level']}" if data["level"] else "the default"
    messages.success(request, f"{who} · {data['target']}: now {level}.")
    return redirect("agents_autonomy")


@require_POST
def autonomy_windows(request: WorkspaceRequest) -> HttpResponse:
    if (denied := _managers_only(request, "set agents' autonomy levels")) is not None:
        return denied
    form = AutonomySettingsForm(request.POST)
    if not form.is_valid():
        return autonomy_page(request, settings_form=form, status=400)
    settings_set(
        actor=request.membership,
        undo_window_seconds=form.cleaned_data["undo_window_minutes"] * 60,
        action_ttl_seconds=form.cleaned_data["action_ttl_hours"] * 3600,
    )
    messages.success(request, "Windows saved.")
    return redirect("agents_autonomy")


@require_POST
def tool_undo_view(request: WorkspaceRequest, audit_id: int) -> HttpResponse:
    """Undo an L2 call (the chat's Undo button): the person it acted for, or an admin."""
    try:
        undo = tool_undo(
            workspace=request.workspace, membership=request.membership, audit_id=audit_id
        )
    except NotFoundError:
        raise Http404("No such tool call.") from None
    except ApplicationError as exc:
        return HttpResponse(
            format_html(
                '<p class="error" role="alert" data-testid="undo-error">{}</p>', exc.message
            ),
            status=400,
        )
    return HttpResponse(
        format_html('<p class="muted small" data-testid="undone">{}</p>', undo.result_summary)
    )


# --- tasks -------------------------------------------------------------------------------------


def tasks_page(
    request: WorkspaceRequest, *, form: TaskForm | None = None, status: int = 200
) -> HttpResponse:
    show = TaskFilterForm(request.GET).show_value()
    page = Paginator(task_list(show=show), TASKS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form or TaskForm(),
        "show": show,
        "filters": TASK_FILTER_CHOICES,
        "page": page,
        "rows": task_rows(page.object_list, membership=request.membership),
    }
    return render(request, "agents/tasks.html", context, status=status)


def _back_to_tasks(request: WorkspaceRequest) -> HttpResponse:
    show = TaskFilterForm(request.POST).show_value()
    url = reverse("tasks")
    return redirect(url if show == "all" else f"{url}?show={show}")


@require_POST
def task_add(request: WorkspaceRequest) -> HttpResponse:
    form = TaskForm(request.POST)
    if not form.is_valid():
        return tasks_page(request, form=form, status=400)
    try:
        task = services.task_create(actor=request.membership, **form.cleaned_data)
    except ApplicationError as exc:
        attach_error(form, exc)
        return tasks_page(request, form=form, status=exc.status)
    messages.success(request, f"Added “{task.title}”.")
    return _back_to_tasks(request)


def _task_refused(request: WorkspaceRequest, exc: ApplicationError) -> HttpResponse:
    messages.error(request, exc.message)
    return tasks_page(request, status=exc.status)


@require_POST
def task_status(request: WorkspaceRequest, task_id: int) -> HttpResponse:
    task = access_task(task_id=task_id)
    form = TaskStatusForm(request.POST)
    if not form.is_valid():
        return _task_refused(request, ApplicationError("Mark a task done, or open again."))
    try:
        services.task_set_status(
            actor=request.membership, task=task, status=form.cleaned_data["status"]
        )
    except PermissionDeniedError as exc:
        return _task_refused(request, exc)
    done = task.status == Task.Status.DONE
    messages.success(request, f"“{task.title}” is {'done' if done else 'open again'}.")
    return _back_to_tasks(request)


@require_POST
def task_delete(request: WorkspaceRequest, task_id: int) -> HttpResponse:
    task = access_task(task_id=task_id)
    title = task.title
    try:
        services.task_delete(actor=request.membership, task=task)
    except PermissionDeniedError as exc:
        return _task_refused(request, exc)
    messages.success(request, f"Deleted “{title}”.")
    return _back_to_tasks(request)


# --- long runs ---------------------------------------------------------------------------------


def runs_page(request: WorkspaceRequest) -> HttpResponse:
    """The runs this person may see (owners/admins: all), newest first, and a form to start one."""
    runs = run_visible(membership=request.membership)[:100]
    agents = [a for a in agent_list() if a.tools and a.is_active]
    return render(request, "agents/runs.html", {"runs": runs, "agents": agents})


@require_POST
def run_new(request: WorkspaceRequest) -> HttpResponse:
    """Start a run in the background (any member, for themselves)."""
    agent = Agent.objects.filter(pk=_int(request.POST.get("agent"))).first()
    try:
        if agent is None:
            raise ApplicationError("Choose an agent.", field="agent")
        run = run_start(
            workspace=request.workspace,
            membership=request.membership,
            agent=agent,
            task=request.POST.get("task", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        runs = run_visible(membership=request.membership)[:100]
        agents = [a for a in agent_list() if a.tools and a.is_active]
        context = {"runs": runs, "agents": agents, "task": request.POST.get("task", "")}
        return render(request, "agents/runs.html", context, status=400)
    return redirect("run_detail", public_id=run.public_id)


def run_detail(request: WorkspaceRequest, public_id: str) -> HttpResponse:
    run = _run_or_404(request, public_id)
    context = {"run": run, "events": run.events.all()[:500]}
    return render(request, "agents/run.html", context)


@require_POST
def run_cancel_view(request: WorkspaceRequest, public_id: str) -> HttpResponse:
    run = _run_or_404(request, public_id)
    try:
        run_cancel(membership=request.membership, run=run)
        messages.success(request, "Cancel requested: the run stops within a step.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("run_detail", public_id=run.public_id)


def _run_or_404(request: WorkspaceRequest, public_id: str) -> AgentRun:
    try:
        return access_run(membership=request.membership, public_id=public_id)
    except NotFoundError:
        raise Http404("No such run.") from None


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
