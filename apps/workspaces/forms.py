"""Forms: validation only; writes go through services."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from apps.common.errors import ApplicationError

from .api_keys import API_KEY_DEFAULT_SCOPES, API_KEY_SCOPE_LABELS, API_KEY_SCOPES
from .models import Role, User, Workspace
from .services import workspace_create
from .validators import schema_name_for, validate_slug

SLUG_HELP = (
    "Lowercase letters, digits and hyphens, 3–40 characters; it becomes your workspace's address."
)
SLUG_WIDGET = forms.TextInput(
    attrs={"maxlength": 40, "autocapitalize": "none", "spellcheck": "false"}
)


def clean_new_slug(value: str) -> str:
    """Form-side check of a new workspace slug (the service checks again inside its transaction)."""
    value = value.strip()
    validate_slug(value)
    if Workspace.objects.filter(schema_name=schema_name_for(value)).exists():
        raise ValidationError(f"The address “{value}” is taken; choose another.", code="taken")
    return value


class WorkspaceCreateForm(forms.Form):
    name = forms.CharField(max_length=100, label="Workspace name")
    # Length is checked by validate_slug, whose message states the whole rule.
    slug = forms.CharField(label="Address", help_text=SLUG_HELP, widget=SLUG_WIDGET)

    def clean_slug(self) -> str:
        return clean_new_slug(self.cleaned_data["slug"])


class SignupForm(AllauthSignupForm):
    """allauth sign-up plus an optional first workspace, created in the same transaction."""

    workspace_name = forms.CharField(
        max_length=100,
        required=False,
        label="Workspace name",
        help_text="Leave both workspace fields empty if you were invited to one.",
    )
    workspace_slug = forms.CharField(
        required=False, label="Workspace address", help_text=SLUG_HELP, widget=SLUG_WIDGET
    )

    def clean_workspace_slug(self) -> str:
        slug = self.cleaned_data.get("workspace_slug", "").strip()
        return clean_new_slug(slug) if slug else ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        name, slug = cleaned.get("workspace_name", "").strip(), cleaned.get("workspace_slug")
        if name and not slug and "workspace_slug" not in self.errors:
            self.add_error("workspace_slug", "Choose an address for the workspace.")
        if slug and not name:
            self.add_error("workspace_name", "Give the workspace a name.")
        return cleaned

    def save(self, request: HttpRequest) -> User:
        with transaction.atomic():
            user: User = super().save(request)
            slug = self.cleaned_data.get("workspace_slug")
            if slug:
                workspace_create(name=self.cleaned_data["workspace_name"], slug=slug, owner=user)
        return user


class RenameForm(forms.Form):
    name = forms.CharField(max_length=100, label="Workspace name")


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    """Types only: the service checks the values (name, scopes, future expiry, limit range)."""

    name = forms.CharField(
        max_length=100, label="Name", help_text="Where the key is used, e.g. “support bot”."
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, API_KEY_SCOPE_LABELS[scope]) for scope in API_KEY_SCOPES],
        initial=list(API_KEY_DEFAULT_SCOPES),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope for the key."},
    )
    expires_at = forms.DateField(
        required=False,
        label="Valid until",
        help_text="The last day the key works (UTC). Empty: it does not expire.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    rate_limit_per_minute = forms.IntegerField(
        required=False,
        label="Requests per minute",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        default = settings.API_KEY_DEFAULT_RATE_LIMIT
        self.fields["rate_limit_per_minute"].help_text = f"Empty: the default, {default}."

    def clean_expires_at(self) -> datetime | None:
        """The end of the chosen day, UTC."""
        day = self.cleaned_data.get("expires_at")
        if day is None:
            return None
        try:
            return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
        except OverflowError as exc:  # 9999-12-31 has no next day
            raise ValidationError("Choose an earlier date.") from exc


def attach_error(form: forms.Form, error: ApplicationError) -> None:
    """Show a service error on the form field it names (or on the form)."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)
