"""Sidebar filters of the trace and call-log changelists (one set for both).

Each filter validates its value once, when the changelist builds it: a malformed value (a bad
date, an unknown workspace or email, a status that does not exist) is dropped with a warning
message and the list stays unfiltered by it — never a 500, never Django's "?e=1" page.
Choice filters offer links; input filters are typed into the sidebar. Both find the call-log
and trace fields through the admin's `call_path` and `trace_path` (base.field_paths).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from apps.llm.services import routing_table
from apps.traces.models import CallStatus
from apps.workspaces.models import User, Workspace

from .base import IDENTIFIER, field_paths, parse_moment

PROVIDERS = ("anthropic", "openai", "openai_compatible", "local")
ACTOR_TYPES = ("user", "agent", "system", "api_key")


class CheckedChoiceFilter(admin.SimpleListFilter):
    """A choice filter that refuses (with a message) values outside `accepts`."""

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, Any],
        model: type[Model],
        model_admin: admin.ModelAdmin,
    ):
        super().__init__(request, params, model, model_admin)
        self.call_path, self.trace_path = field_paths(model_admin)
        value = self.value()
        if value is not None and not self.accepts(value):
            messages.warning(
                request, f"Ignored the {self.title} filter: “{value}” is not a valid value."
            )
            self.used_parameters.pop(str(self.parameter_name), None)

    field = ""  # the call-log field an accepted value selects (exact match)

    def accepts(self, value: str) -> bool:
        return value in {str(key) for key, _ in self.lookup_choices}

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{f"{self.call_path}{self.field}": value}) if value else queryset


class AliasFilter(CheckedChoiceFilter):
    title = "alias"
    parameter_name = "alias"
    field = "alias"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in routing_table().names()]

    def accepts(self, value: str) -> bool:
        # An alias removed from the routing table still names old calls.
        return bool(IDENTIFIER.match(value)) and not value.endswith("*")


class ProviderFilter(CheckedChoiceFilter):
    title = "provider"
    parameter_name = "provider"
    field = "provider"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in PROVIDERS]


class StatusFilter(CheckedChoiceFilter):
    title = "status"
    parameter_name = "status"
    field = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(CallStatus.choices)


class ActorTypeFilter(CheckedChoiceFilter):
    title = "actor type"
    parameter_name = "actor_type"
    field = "actor_type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(kind, kind) for kind in ACTOR_TYPES]


class _FlagFilter(CheckedChoiceFilter):
    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(**{f"{self.call_path}{self.field}": value == "yes"})


class CachedFilter(_FlagFilter):
    title = "cache hit"
    parameter_name = "cached"
    field = "cached"


class FallbackFilter(_FlagFilter):
    title = "fallback"
    parameter_name = "fallback"
    field = "fallback_used"


class ScoreFilter(CheckedChoiceFilter):
    title = "score"
    parameter_name = "score"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("up", "Thumbs up"), ("down", "Thumbs down"), ("none", "No feedback")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        field = f"{self.trace_path}score"
        if value == "up":
            return queryset.filter(**{f"{field}__gt": 0})
        if value == "down":
            return queryset.filter(**{f"{field}__lt": 0})
        if value == "none":
            return queryset.filter(**{f"{field}__isnull": True})
        return queryset


class InputFilter(admin.ListFilter):
    """A filter typed into the sidebar: `inputs` are (parameter, label, input type).
    Subclasses turn the values into a Q in `build`, or return None after a message."""

    template = "admin/traces/input_filter.html"
    inputs: tuple[tuple[str, str, str], ...] = ()

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, Any],
        model: type[Model],
        model_admin: admin.ModelAdmin,
    ):
        super().__init__(request, params, model, model_admin)
        self.call_path, self.trace_path = field_paths(model_admin)
        self.values: dict[str, str] = {}
        for name, _, _ in self.inputs:
            if name in params:
                value = str(params.pop(name)[-1]).strip()
                if value:
                    self.values[name] = value
        self.q = self.build(request) if self.values else None
        if self.q is not None:
            self.used_parameters = dict(self.values)

    def build(self, request: HttpRequest) -> Q | None:
        raise NotImplementedError

    def ignore(self, request: HttpRequest, reason: str) -> None:
        messages.warning(request, f"Ignored the {self.title} filter: {reason}")

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return [name for name, _, _ in self.inputs]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(self.q) if self.q is not None else queryset

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        ours = set(self.expected_parameters())
        yield {
            "inputs": [
                {
                    "name": name,
                    "label": label,
                    "type": kind,
                    "value": self.request.GET.get(name, ""),
                }
                for name, label, kind in self.inputs
            ],
            "hidden": [(k, v) for k, v in changelist.params.items() if k not in ours],
            "clear_url": changelist.get_query_string(remove=list(ours)),
            "active": bool(self.used_parameters),
        }


class WorkspaceFilter(InputFilter):
    title = "workspace"
    inputs = (("workspace", "slug or id", "text"),)

    def build(self, request: HttpRequest) -> Q | None:
        value = self.values["workspace"]
        by = Q(slug=value) | (Q(pk=int(value)) if value.isdigit() else Q())
        found = Workspace.objects.tenants().filter(by).first()
        if found is None:
            self.ignore(request, f"there is no workspace “{value}”.")
            return None
        return Q(workspace_id=found.pk)


class ActorFilter(InputFilter):
    title = "actor"
    inputs = (("actor_id", "actor id", "text"), ("actor_email", "user email contains", "text"))

    def build(self, request: HttpRequest) -> Q | None:
        q = Q()
        if actor_id := self.values.get("actor_id"):
            if not IDENTIFIER.match(actor_id) or actor_id.endswith("*"):
                self.ignore(request, f"“{actor_id}” is not an actor id.")
                return None
            q &= Q(**{f"{self.call_path}actor_id": actor_id})
        if email := self.values.get("actor_email"):
            ids = [
                str(pk)
                for pk in User.objects.filter(email__icontains=email).values_list("pk", flat=True)[
                    :200
                ]
            ]
            if not ids:
                self.ignore(request, f"no user's email contains “{email}”.")
                return None
            q &= Q(**{f"{self.call_path}actor_type": "user", f"{self.call_path}actor_id__in": ids})
        return q


class _IdentifierFilter(InputFilter):
    """Exact match on one call-log column; a trailing * matches a prefix ("chat*")."""

    field = ""

    def build(self, request: HttpRequest) -> Q | None:
        value = self.values[self.field]
        if not IDENTIFIER.match(value):
            self.ignore(request, f"“{value}” is not a valid {self.title}.")
            return None
        if value.endswith("*"):
            return Q(**{f"{self.call_path}{self.field}__startswith": value[:-1]})
        return Q(**{f"{self.call_path}{self.field}": value})


class FeatureFilter(_IdentifierFilter):
    title = "feature"
    field = "feature"
    inputs = (("feature", "e.g. chat or chat*", "text"),)


class ModelFilter(_IdentifierFilter):
    title = "model"
    field = "model"
    inputs = (("model", "e.g. claude-sonnet-4-6", "text"),)


class CreatedFilter(InputFilter):
    title = "date"
    inputs = (("created_from", "from", "date"), ("created_to", "to (inclusive)", "date"))

    def build(self, request: HttpRequest) -> Q | None:
        q = Q()
        for name, lookup, end in (("created_from", "gte", False), ("created_to", "lt", True)):
            if value := self.values.get(name):
                moment = parse_moment(value, end=end)
                if moment is None:
                    self.ignore(request, f"“{value}” is not a date (use YYYY-MM-DD).")
                    return None
                q &= Q(**{f"created_at__{lookup}": moment})
        return q


TRACE_FILTERS = (
    WorkspaceFilter,
    CreatedFilter,
    ActorTypeFilter,
    ActorFilter,
    FeatureFilter,
    AliasFilter,
    ModelFilter,
    ProviderFilter,
    StatusFilter,
    CachedFilter,
    FallbackFilter,
    ScoreFilter,
)
