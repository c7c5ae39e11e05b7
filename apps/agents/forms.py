"""Forms of the Agents, Tasks and audit pages: types and shapes only; the rules (unique slugs,
known tools and aliases, who may change what) are the services'."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join

from apps.approvals.models import ANY_TOOL, FLAGS, Approvers, Level
from apps.billing.forms import PeriodForm
from apps.billing.ledger import MICROS_PER_USD
from apps.llm.services import alias_names

from .mcp_remote.services import McpServerFields
from .models import Agent, Task, ToolAudit
from .selectors import TASK_FILTERS, AuditFilters, ToolRow, tool_catalogue
from .services import (
    DESCRIPTION_MAX,
    HTTP_DOMAINS_MAX,
    INSTRUCTIONS_MAX,
    LIMIT_MAX_MICROS,
    MAX_STEPS_RANGE,
    NAME_MAX,
    SLUG_MAX,
    TASK_NOTES_MAX,
    TASK_TITLE_MAX,
    AgentFields,
)


class DollarsField(forms.Field):
    """An optional dollar amount ("2", "0.50", "$1,000") → integer micro-dollars, never a float;
    empty → None."""

    def __init__(self, *, what: str, **kwargs: Any):
        self.what = what
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "no limit"})
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip().replace(",", "").removeprefix("$").strip()
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise forms.ValidationError(
                f"Enter the {self.what} in dollars, e.g. 2.50; leave it empty for no limit."
            ) from None
        if not amount.is_finite():
            raise forms.ValidationError(f"Enter the {self.what} in dollars, e.g. 2.50.")
        if amount <= 0:
            raise forms.ValidationError(
                f"The {self.what} must be more than $0; leave it empty for no limit."
            )
        micros = amount * MICROS_PER_USD
        if micros != micros.to_integral_value():
            raise forms.ValidationError(f"Give the {self.what} to at most six decimal places.")
        if micros > LIMIT_MAX_MICROS:
            raise forms.ValidationError(
                f"The {self.what} can be at most ${LIMIT_MAX_MICROS // MICROS_PER_USD:,}."
            )
        return int(micros)


def dollars_input(micros: int | None) -> str:
    """Micro-dollars as the form shows them: "2.5" for 2,500,000; "" for None."""
    if micros is None:
        return ""
    return f"{(Decimal(micros) / MICROS_PER_USD).normalize():f}"


def _tool_label(row: ToolRow) -> str:
    flags = format_html_join(
        "",
        ' <span class="flag flag-{0}{1}">{2}</span>',
        ((flag, " risky" if risky else "", words) for flag, words, risky in row.badges),
    )
    return format_html(
        '<span class="tool-label">{0}</span> <code>{1}</code>{2}', row.label, row.name, flags
    )


class AgentForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    slug = forms.CharField(
        max_length=SLUG_MAX,
        required=False,
        help_text="How the API names it (“agent:&lt;slug&gt;”). Empty: made from the name.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )
    description = forms.CharField(
        max_length=DESCRIPTION_MAX,
        required=False,
        help_text="For people choosing an agent.",
    )
    instructions = forms.CharField(
        max_length=INSTRUCTIONS_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=f"What this agent should do and how; added to its system prompt. Up to "
        f"{INSTRUCTIONS_MAX:,} characters.",
        error_messages={
            "max_length": f"Keep the instructions to {INSTRUCTIONS_MAX:,} characters "
            "(they have %(show_value)d)."
        },
    )
    alias = forms.ChoiceField(
        label="Model alias",
        error_messages={"invalid_choice": "“%(value)s” is not a model alias."},
    )
    tools = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "“%(value)s” is not a tool of this platform."},
    )
    daily_spend_limit = DollarsField(
        what="daily spend limit",
        label="Daily spend limit ($)",
        help_text="Across all its conversations and runs, per UTC day. Empty: no limit.",
    )
    max_steps = forms.IntegerField(
        min_value=MAX_STEPS_RANGE[0],
        max_value=MAX_STEPS_RANGE[1],
        initial=8,
        help_text="Model calls per answer or run.",
        error_messages={
            "min_value": "Max steps is a whole number from 1 to 50.",
            "max_value": "Max steps is a whole number from 1 to 50.",
            "invalid": "Max steps is a whole number from 1 to 50.",
            "required": "Give the most model calls per answer or run (1 to 50).",
        },
    )
    max_run_cost = DollarsField(
        what="cost cap per run",
        label="Max cost per run ($)",
        help_text="Empty: no cap.",
    )

    def __init__(self, *args: Any, agent: Agent | None = None, **kwargs: Any):
        if agent is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": agent.name,
                "slug": agent.slug,
                "description": agent.description,
                "instructions": agent.instructions,
                "alias": agent.alias,
                "tools": list(agent.tools or []),
                "daily_spend_limit": dollars_input(agent.daily_spend_limit_micros),
                "max_steps": agent.max_steps,
                "max_run_cost": dollars_input(agent.max_run_cost_micros),
            }
        super().__init__(*args, **kwargs)
        self.agent = agent
        alias_field = self.fields["alias"]
        assert isinstance(alias_field, forms.ChoiceField)
        alias_field.choices = [(a, a) for a in alias_names("chat")]
        tools_field = self.fields["tools"]
        assert isinstance(tools_field, forms.MultipleChoiceField)
        self.tool_rows = tool_catalogue()
        tools_field.choices = [(row.name, _tool_label(row)) for row in self.tool_rows]
        if agent is not None and agent.is_default:
            # The Assistant keeps its slug and stays toolless (the service says so too).
            self.fields["slug"].disabled = True
            self.fields["slug"].help_text = "The default Assistant's slug does not change."
            tools_field.disabled = True
            tools_field.help_text = "The default Assistant has no tools; another agent may."

    def agent_fields(self) -> AgentFields:
        data = self.cleaned_data
        return AgentFields(
            name=data["name"],
            slug=data["slug"],
            description=data["description"],
            instructions=data["instructions"],
            alias=data["alias"],
            tools=data["tools"],
            daily_spend_limit_micros=data["daily_spend_limit"],
            max_steps=data["max_steps"],
            max_run_cost_micros=data["max_run_cost"],
        )


class TaskForm(forms.Form):
    title = forms.CharField(
        max_length=TASK_TITLE_MAX,
        error_messages={"required": "Give the task a title."},
    )
    notes = forms.CharField(
        max_length=TASK_NOTES_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    due_on = forms.DateField(
        label="Due",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )


TASK_FILTER_CHOICES = [(f, f.capitalize()) for f in TASK_FILTERS]


class TaskFilterForm(forms.Form):
    show = forms.ChoiceField(choices=TASK_FILTER_CHOICES, required=False, initial="all")

    def show_value(self) -> str:
        if self.is_valid():
            return self.cleaned_data["show"] or "all"
        return "all"


class TaskStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Task.Status.choices)


class AuditFilterForm(PeriodForm):
    """Filters of the audit page (GET); every one optional. Dates are whole UTC days, checked
    as billing's periods are (an end before the start, or too late, is an error)."""

    agent = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    tool = forms.CharField(required=False, max_length=120)
    status = forms.ChoiceField(required=False)
    person = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)

    def __init__(
        self,
        *args: Any,
        agents: list[tuple[int, str]],
        people: list[tuple[int, str]],
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.order_fields(["agent", "tool", "status", "person", "start", "end"])
        self._choices("agent", [("", "Any agent"), *agents])
        self._choices("person", [("", "Anyone"), *people])
        self._choices("status", [("", "Any status"), *ToolAudit.Status.choices])

    def _choices(self, name: str, choices: list[tuple[Any, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def filters(self) -> AuditFilters:
        """The valid filters; an invalid form filters nothing (its errors are shown)."""
        if not self.is_valid():
            return AuditFilters()
        data = self.cleaned_data
        start, end = data.get("start"), data.get("end")
        return AuditFilters(
            agent_id=data.get("agent"),
            tool=(data.get("tool") or "").strip(),
            status=data.get("status") or "",
            person_id=data.get("person"),
            start=dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC) if start else None,
            end=(
                dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
                if end
                else None
            ),
        )


class HttpDomainsForm(forms.Form):
    """The hosts agents' `http_get` may fetch (AI settings), one per line."""

    http_allowed_domains = forms.CharField(
        label="Hosts agents may fetch",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "none"}),
        help_text=f"One host per line, e.g. docs.example.com; “.example.com” (a leading dot) "
        f"allows every subdomain of example.com (list example.com too for the domain itself). "
        f"At most {HTTP_DOMAINS_MAX}. Empty: agents fetch nothing.",
    )

    def entries(self) -> list[str]:
        return str(self.cleaned_data.get("http_allowed_domains") or "").splitlines()


class McpServerForm(forms.Form):
    """An external MCP server to register (Agents page): the rules are the service's."""

    name = forms.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens; its tools are called “name.tool”.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text="Its Streamable HTTP endpoint, e.g. https://mcp.example.com/mcp.",
        widget=forms.URLInput(attrs={"spellcheck": "false"}),
    )
    header_name = forms.CharField(
        label="Secret header",
        max_length=100,
        required=False,
        help_text="e.g. Authorization or X-Api-Key; empty for a server that needs none.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )
    header_value = forms.CharField(
        label="Secret value",
        max_length=4_000,
        required=False,
        strip=False,
        help_text="Stored encrypted; only its last 4 characters are shown again.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )

    def server_fields(self) -> McpServerFields:
        data = self.cleaned_data
        return McpServerFields(
            name=data["name"],
            url=data["url"],
            header_name=data["header_name"],
            header_value=data["header_value"],
        )


class AutonomyRuleForm(forms.Form):
    """One level on the autonomy page: for an agent's tool (or `*`: any of its tools), or with
    no agent for the workspace's tools with a flag. An empty level goes back to the default."""

    agent = forms.IntegerField(required=False, min_value=1)
    target = forms.CharField(max_length=120)
    level = forms.TypedChoiceField(
        choices=[("", "Default"), *Level.choices], coerce=int, empty_value=None, required=False
    )
    approvers = forms.ChoiceField(choices=Approvers.choices, initial=Approvers.ADMINS)
    reason = forms.CharField(required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        agent_id, target = data.get("agent"), data.get("target")
        if target is None:
            return data
        if agent_id is None:
            if target not in FLAGS:
                self.add_error("target", f"Unknown tool flag “{target}”.")
            return data
        agent = Agent.objects.filter(pk=agent_id).first()
        if agent is None:
            self.add_error("agent", "No such agent.")
        elif target != ANY_TOOL and target not in (agent.tools or []):
            self.add_error("target", f"{agent.name} has no tool “{target}”.")
        else:
            data["agent_obj"] = agent
        return data


class AutonomySettingsForm(forms.Form):
    undo_window_minutes = forms.IntegerField(
        min_value=1, max_value=24 * 60, label="Undo window (minutes)"
    )
    action_ttl_hours = forms.IntegerField(
        min_value=1, max_value=30 * 24, label="Pending actions expire after (hours)"
    )
