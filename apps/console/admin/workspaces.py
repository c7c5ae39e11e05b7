"""The workspace admin for platform staff: its domains, members, AI settings (validated against
the gateway's aliases), BYOK keys, and the legal hold that suspends trace retention. It lives in
the console because it reads the gateway's routing table, above the tenancy layer."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, BaseModelFormSet
from django.http import HttpRequest

from apps.common.errors import ApplicationError
from apps.llm.services import alias_names
from apps.workspaces.admin import (
    DomainInline,
    MembershipInline,
    ProviderKeyInline,
    save_provider_key_form,
)
from apps.workspaces.ai import model_overrides_validate, provider_key_delete
from apps.workspaces.models import AISettings, ProviderKey, User, Workspace
from apps.workspaces.services import legal_hold_set


class AISettingsForm(forms.ModelForm):
    class Meta:
        model = AISettings
        fields = (
            "model_overrides",
            "daily_token_limit",
            "user_daily_request_limit",
            "max_tokens_per_call",
        )
        help_texts = {
            "model_overrides": 'e.g. {"smart": {"provider": "openai", "model": "gpt-4.1"}}: '
            "replaces the alias's primary route for this workspace.",
            "daily_token_limit": "Empty: the plan's default.",
            "user_daily_request_limit": "Empty: the plan's default.",
            "max_tokens_per_call": "Empty: the platform's default.",
        }

    def clean_model_overrides(self) -> dict[str, Any]:
        try:
            return model_overrides_validate(
                self.cleaned_data.get("model_overrides"), aliases=alias_names()
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc


class AISettingsInline(admin.StackedInline):
    model = AISettings
    form = AISettingsForm
    can_delete = False
    max_num = 1
    verbose_name_plural = "AI settings (empty: the plan's defaults)"


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "schema_name", "plan", "legal_hold", "created_at")
    list_filter = ("plan", "legal_hold")
    search_fields = ("name", "slug")
    # legal_hold changes only through the actions below: superusers, written to the history.
    readonly_fields = ("schema_name", "slug", "legal_hold", "created_by", "created_at")
    inlines = (DomainInline, MembershipInline, AISettingsInline, ProviderKeyInline)
    actions = ("place_legal_hold", "lift_legal_hold")

    def has_legal_hold_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(
        description="Place a legal hold (suspend trace retention)", permissions=["legal_hold"]
    )
    def place_legal_hold(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        self._legal_hold(request, queryset, hold=True)

    @admin.action(description="Lift the legal hold", permissions=["legal_hold"])
    def lift_legal_hold(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> None:
        self._legal_hold(request, queryset, hold=False)

    def _legal_hold(
        self, request: HttpRequest, queryset: QuerySet[Workspace], *, hold: bool
    ) -> None:
        changed = legal_hold_set(
            workspaces=queryset, hold=hold, actor_id=cast(User, request.user).pk
        )
        for workspace in changed:
            self.log_change(
                request, workspace, "Legal hold placed." if hold else "Legal hold lifted."
            )
        verb = "Placed a legal hold on" if hold else "Lifted the legal hold of"
        self.message_user(request, f"{verb} {len(changed)} workspace(s).", messages.SUCCESS)

    def has_add_permission(self, request: object) -> bool:
        # Workspaces are created through workspace_create (schema, domain, owner together).
        return False

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseModelFormSet[Any, Any], change: bool
    ) -> None:
        if formset.model is not ProviderKey:
            super().save_formset(request, form, formset, change)
            return
        assert isinstance(formset, BaseInlineFormSet)
        # Sorts rows into new / changed / deleted (the admin's change message reads those
        # lists) without saving: keys are written by the service, which encrypts them.
        formset.save(commit=False)
        for row in formset.deleted_objects:
            provider_key_delete(workspace=row.workspace, provider=row.provider)
        for key_form in formset.forms:
            if key_form in formset.deleted_forms or not key_form.has_changed():
                continue
            save_provider_key_form(key_form, key_form.instance, request)
