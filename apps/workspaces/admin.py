from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.common.errors import ApplicationError

from .ai import (
    provider_key_set,
    provider_key_validate,
)
from .api_keys import api_key_revoke
from .models import (
    ApiKey,
    Domain,
    Invitation,
    Membership,
    ProviderKey,
    User,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined")
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password", "name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ("groups",)
    list_filter = ("is_staff", "is_active", "groups")


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


class ProviderKeyForm(forms.ModelForm):
    """The key is write-only: typed in, encrypted by `provider_key_set`, never rendered back
    (not even after a validation error). Only its last 4 characters are ever shown."""

    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text=ProviderKey._meta.get_field("base_url").help_text,
    )
    key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted. Leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderKey
        fields = ("provider", "base_url")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.instance.pk and "provider" in self.fields:
            self.fields["provider"].disabled = True  # another provider is another key (row)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        key: str = cleaned.get("key") or ""
        base_url: str = cleaned.get("base_url") or ""
        if not key:
            if self.instance.pk is None:
                self.add_error("key", "Enter the provider's API key.")
            elif "base_url" in self.changed_data:
                # A stored key only ever goes to the server it was entered for.
                self.add_error("key", "Enter the key again to change where it is sent.")
            return cleaned
        provider = cleaned.get("provider") or self.instance.provider
        try:
            cleaned["key"] = provider_key_validate(provider=provider, key=key, base_url=base_url)
        except ApplicationError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return cleaned


def save_provider_key_form(form: ProviderKeyForm, row: ProviderKey, request: HttpRequest) -> None:
    """Store a typed key through the service (it encrypts); no key typed → nothing changed."""
    key = form.cleaned_data.get("key")
    if not key:
        return
    saved = provider_key_set(
        workspace=row.workspace,
        provider=row.provider,
        key=key,
        base_url=row.base_url,
        actor=cast(User, request.user),
    )
    row.pk = saved.pk
    row.refresh_from_db()


class KeyHintMixin:
    @admin.display(description="Key")
    def key_hint(self, row: ProviderKey) -> str:
        return f"…{row.last4}" if row.last4 else "—"


class ProviderKeyInline(KeyHintMixin, admin.TabularInline):
    model = ProviderKey
    form = ProviderKeyForm
    extra = 0
    fields = ("provider", "key", "key_hint", "base_url", "updated_at")
    readonly_fields = ("key_hint", "updated_at")
    verbose_name = "provider key (BYOK)"
    verbose_name_plural = "provider keys (BYOK)"


@admin.register(ProviderKey)
class ProviderKeyAdmin(KeyHintMixin, admin.ModelAdmin):
    form = ProviderKeyForm
    list_display = ("workspace", "provider", "key_hint", "base_url", "created_by", "updated_at")
    list_filter = ("provider",)
    search_fields = ("workspace__slug", "workspace__name")
    list_select_related = ("workspace", "created_by")
    autocomplete_fields = ("workspace",)
    fields = ("workspace", "provider", "key", "key_hint", "base_url", "created_by", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ProviderKey | None = None) -> Any:
        readonly = ("key_hint", "created_by", "updated_at")
        return ("workspace", *readonly) if obj is not None else readonly

    def save_model(self, request: HttpRequest, obj: ProviderKey, form: Any, change: bool) -> None:
        save_provider_key_form(form, obj, request)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "workspace",
        "role",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    )
    list_filter = ("role",)
    search_fields = ("email", "workspace__slug")
    exclude = ("token_hash",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Read-only: keys are created where their secret can be shown once (the workspace's settings
    page, `manage.py apikey`); staff with the change permission may revoke them. The hash is
    never displayed."""

    list_display = (
        "prefix",
        "name",
        "workspace",
        "scopes",
        "status",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_select_related = ("workspace", "created_by")
    search_fields = ("prefix", "name", "workspace__slug")
    fields = (
        "workspace",
        "name",
        "prefix",
        "scopes",
        "rate_limit_per_minute",
        "status",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke",)

    @admin.display(description="Status")
    def status(self, row: ApiKey) -> str:
        return row.status

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {len(keys)} API key(s).", messages.SUCCESS)
