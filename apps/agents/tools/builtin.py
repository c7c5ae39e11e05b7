"""The built-in tools: real actions on the workspace, not simulations.

- `current_time` — read only.
- `search_documents` — read only: the workspace's documents (RAG), the passages an answer
  cites.
- `list_tasks`, `create_task`, `update_task`, `delete_task` (destructive) — the Tasks page's
  table. A member may change their own tasks; owners and admins any (the agent is held to it).
- `send_email` — external: Django's email backend (the console locally).
- `http_get` — external: only hosts on the workspace's allowlist (AI settings), through the
  SSRF-safe fetcher (no private, loopback or link-local address, checked on every redirect).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db.models import Q
from django.utils import timezone
from pydantic import AfterValidator, BaseModel, Field, HttpUrl

from apps.agents.models import Task
from apps.agents.selectors import task_can_change
from apps.common.errors import ApplicationError
from apps.common.fetch import fetch_url
from apps.llm.services import Actor
from apps.rag.grounding import passages_for
from apps.workspaces.ai import ai_settings_get

from .registry import ToolContext, tool

# --- time --------------------------------------------------------------------------------------


class NoArgs(BaseModel):
    model_config = {"extra": "forbid"}


class TimeNow(BaseModel):
    utc: str = Field(description="ISO 8601, UTC")
    weekday: str


@tool(
    "current_time",
    description="The current date and time (UTC).",
    input=NoArgs,
    output=TimeNow,
    read_only=True,
    label="Tell the time",
)
def current_time(ctx: ToolContext, args: NoArgs) -> TimeNow:
    now = timezone.now().astimezone(dt.UTC)
    return TimeNow(utc=now.isoformat(timespec="seconds"), weekday=now.strftime("%A"))


# --- documents ---------------------------------------------------------------------------------


class SearchArgs(BaseModel):
    model_config = {"extra": "forbid"}
    query: str = Field(min_length=1, max_length=500, description="What to look for")
    k: int = Field(default=5, ge=1, le=10, description="How many passages")


class PassageOut(BaseModel):
    n: int
    title: str
    section: str
    page: int | None
    text: str
    url: str


class SearchResult(BaseModel):
    passages: list[PassageOut]


@tool(
    "search_documents",
    description=(
        "Search the workspace's documents. Returns numbered passages; cite them as [n] in "
        "your answer. An empty list means nothing relevant was found: say so."
    ),
    input=SearchArgs,
    output=SearchResult,
    read_only=True,
    timeout=15.0,
    label="Search the documents",
)
def search_documents(ctx: ToolContext, args: SearchArgs) -> SearchResult:
    found = passages_for(
        workspace=ctx.workspace,
        question=args.query,
        user=ctx.user,
        actor=Actor("agent", str(ctx.agent.pk)),
        k=args.k,
    )
    return SearchResult(
        passages=[
            PassageOut(n=p.n, title=p.title, section=p.heading, page=p.page, text=p.text, url=p.url)
            for p in found
        ]
    )


# --- tasks -------------------------------------------------------------------------------------


class TaskOut(BaseModel):
    id: int
    title: str
    status: Literal["open", "done"]
    notes: str
    due_on: str | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.pk,
            title=task.title,
            status=task.status,  # type: ignore[arg-type]
            notes=task.notes,
            due_on=task.due_on.isoformat() if task.due_on else None,
        )


class TaskList(BaseModel):
    tasks: list[TaskOut]


class ListTasksArgs(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["open", "done", "all"] = "open"
    search: str = Field(default="", max_length=100)


@tool(
    "list_tasks",
    description="List the workspace's tasks (open ones by default), newest first, at most 50.",
    input=ListTasksArgs,
    output=TaskList,
    read_only=True,
    label="List tasks",
)
def list_tasks(ctx: ToolContext, args: ListTasksArgs) -> TaskList:
    tasks = Task.objects.all()
    if args.status != "all":
        tasks = tasks.filter(status=args.status)
    if args.search:
        tasks = tasks.filter(Q(title__icontains=args.search) | Q(notes__icontains=args.search))
    return TaskList(tasks=[TaskOut.of(t) for t in tasks.order_by("-pk")[:50]])


class CreateTaskArgs(BaseModel):
    model_config = {"extra": "forbid"}
    title: str = Field(min_length=1, max_length=200)
    notes: str = Field(default="", max_length=5_000)
    due_on: dt.date | None = None


def _undo_create(ctx: ToolContext, result: dict[str, Any]) -> str:
    deleted, _ = Task.objects.filter(pk=result["id"]).delete()
    return f"task {result['id']} removed" if deleted else f"task {result['id']} was already gone"


@tool(
    "create_task",
    description="Create a task in the workspace.",
    input=CreateTaskArgs,
    output=TaskOut,
    writes=True,
    label="Create a task",
    undo=_undo_create,
)
def create_task(ctx: ToolContext, args: CreateTaskArgs) -> TaskOut:
    task = Task.objects.create(
        title=args.title.strip(),
        notes=args.notes.strip(),
        due_on=args.due_on,
        created_by_id=ctx.user.pk,
        created_by_agent=ctx.agent,
    )
    return TaskOut.of(task)


class TaskChanged(TaskOut):
    previous: dict[str, Any]  # the fields as they were, for undo


class UpdateTaskArgs(BaseModel):
    model_config = {"extra": "forbid"}
    id: int = Field(ge=1)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    notes: str | None = Field(default=None, max_length=5_000)
    status: Literal["open", "done"] | None = None
    due_on: dt.date | None = None


def _own_task_or_manager(ctx: ToolContext, task_id: int) -> str | None:
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return None  # the tool answers "no such task"
    if task_can_change(task=task, membership=ctx.membership):
        return None
    return (
        f"Task {task_id} belongs to someone else; only its author, owners and admins may change it."
    )


def _undo_update(ctx: ToolContext, result: dict[str, Any]) -> str:
    task = Task.objects.select_for_update().filter(pk=result["id"]).first()
    if task is None:
        raise ApplicationError(f"Task {result['id']} no longer exists.", field="undo")
    previous = result.get("previous") or {}
    for name, value in previous.items():
        if name == "due_on":
            value = dt.date.fromisoformat(value) if value else None
        setattr(task, name, value)
    task.save()
    return f"task {task.pk} restored ({', '.join(sorted(previous)) or 'nothing changed'})"


@tool(
    "update_task",
    description="Change a task: its title, notes, due date, or status (open / done).",
    input=UpdateTaskArgs,
    output=TaskChanged,
    writes=True,
    permitted=lambda ctx, args: _own_task_or_manager(ctx, args.id),
    label="Update a task",
    undo=_undo_update,
)
def update_task(ctx: ToolContext, args: UpdateTaskArgs) -> TaskChanged:
    task = Task.objects.select_for_update().filter(pk=args.id).first()
    if task is None:
        raise ApplicationError(f"No task {args.id}.", field="id")
    changes = args.model_dump(exclude_unset=True, exclude={"id"})
    before = TaskOut.of(task).model_dump(mode="json")
    previous = {name: before[name] for name in changes}
    for name, value in changes.items():
        setattr(task, name, value.strip() if isinstance(value, str) else value)
    task.save()
    return TaskChanged(**TaskOut.of(task).model_dump(), previous=previous)


class DeleteTaskArgs(BaseModel):
    model_config = {"extra": "forbid"}
    id: int = Field(ge=1)


class Deleted(BaseModel):
    deleted: int
    title: str
    task: TaskOut | None = None  # what it was, for undo
    created_by_id: int | None = None


def _undo_delete(ctx: ToolContext, result: dict[str, Any]) -> str:
    was = result.get("task")
    if not was:
        raise ApplicationError("This deletion kept no copy of the task.", field="undo")
    if Task.objects.filter(pk=was["id"]).exists():
        return f"task {was['id']} exists already"
    Task.objects.create(
        pk=was["id"],
        title=was["title"],
        notes=was["notes"],
        status=was["status"],
        due_on=dt.date.fromisoformat(was["due_on"]) if was["due_on"] else None,
        created_by_id=result.get("created_by_id") or ctx.user.pk,
    )
    return f"task {was['id']} restored"


@tool(
    "delete_task",
    description="Delete a task for good.",
    input=DeleteTaskArgs,
    output=Deleted,
    writes=True,
    destructive=True,
    permitted=lambda ctx, args: _own_task_or_manager(ctx, args.id),
    label="Delete a task",
    undo=_undo_delete,
)
def delete_task(ctx: ToolContext, args: DeleteTaskArgs) -> Deleted:
    task = Task.objects.filter(pk=args.id).first()
    if task is None:
        raise ApplicationError(f"No task {args.id}.", field="id")
    snapshot = TaskOut.of(task)
    task.delete()
    return Deleted(
        deleted=args.id, title=snapshot.title, task=snapshot, created_by_id=task.created_by_id
    )


# --- outside the workspace ---------------------------------------------------------------------


def _email(value: str) -> str:
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError(f"{value!r} is not an email address") from None
    return value


class EmailArgs(BaseModel):
    model_config = {"extra": "forbid"}
    to: list[Annotated[str, AfterValidator(_email)]] = Field(min_length=1, max_length=10)
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


class EmailSent(BaseModel):
    sent_to: list[str]


@tool(
    "send_email",
    description="Send a plain-text email on behalf of the user.",
    input=EmailArgs,
    output=EmailSent,
    external=True,
    timeout=15.0,
    label="Send an email",
)
def send_email(ctx: ToolContext, args: EmailArgs) -> EmailSent:
    recipients = [str(address) for address in args.to]
    message = EmailMessage(
        subject=args.subject.replace("\n", " "),
        body=f"{args.body}\n\n— sent by the agent {ctx.agent.name} for {ctx.user.email}",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        reply_to=[ctx.user.email],
    )
    message.send(fail_silently=False)
    return EmailSent(sent_to=recipients)


class HttpGetArgs(BaseModel):
    model_config = {"extra": "forbid"}
    url: HttpUrl


class HttpPage(BaseModel):
    url: str
    status: int
    content_type: str
    text: str


def _allowed_hosts(ctx: ToolContext) -> list[str]:
    return [str(d) for d in ai_settings_get(workspace=ctx.workspace).http_allowed_domains or []]


def _host_listed(ctx: ToolContext, args: HttpGetArgs) -> str | None:
    if not _allowed_hosts(ctx):
        return (
            "No host is allowed: an owner or admin lists the hosts agents may fetch under "
            "“Web access for agents” on the Agents page."
        )
    return None


@tool(
    "http_get",
    description="Fetch a web page (text) from a host on the workspace's allowlist.",
    input=HttpGetArgs,
    output=HttpPage,
    read_only=True,
    external=True,
    timeout=10.0,
    max_output_chars=20_000,
    permitted=_host_listed,
    label="Fetch a web page",
)
def http_get(ctx: ToolContext, args: HttpGetArgs) -> HttpPage:
    fetched = fetch_url(
        str(args.url),
        allowed_hosts=_allowed_hosts(ctx),
        max_bytes=1_000_000,
        timeout=10.0,
    )
    text = fetched.data.decode("utf-8", errors="replace")
    return HttpPage(
        url=fetched.url, status=fetched.status, content_type=fetched.content_type, text=text
    )
