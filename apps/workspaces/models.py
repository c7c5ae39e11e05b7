"""Users, workspaces (tenants), domains, memberships and invitations — all in the public schema."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.utils import get_public_schema_name

from apps.common.models import BaseModel


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Global: one account reaches every workspace it is a member of."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]


class PlanCode(models.TextChoices):
    """The code of the workspace's billing plan; the plan's terms (limits, credit, retention) are
    billing.Plan rows with that code."""

    FREE = "free", "Free"
    PRO = "pro", "Pro"
    ENTERPRISE = "enterprise", "Enterprise"


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def tenants(self) -> WorkspaceQuerySet:
        """Real workspaces: every row but the public schema's (the platform's own host, which
        has no workspace content, plan or members)."""
        return self.exclude(schema_name=get_public_schema_name())


class Workspace(TenantMixin, BaseModel):  # type: ignore[django-manager-missing]
    """A tenant: one PostgreSQL schema holds its content; its slug is its host name."""

    objects = WorkspaceQuerySet.as_manager()

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=40, unique=True)
    # The billing Plan's code: its limits, monthly credit and retention (apps.billing).
    plan = models.CharField(max_length=16, choices=PlanCode.choices, default=PlanCode.FREE)
    # Suspends retention: nothing of the workspace's traces is deleted or masked while set.
    legal_hold = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # The schema is created by `workspace_create` inside its transaction, not implicitly.
    auto_create_schema = False
    auto_drop_schema = True

    class Meta:
        ordering: ClassVar[list[str]] = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        return bool(self.schema_name == get_public_schema_name())

    @property
    def url(self) -> str:
        """The workspace's home page, e.g. http://acme.localhost:8000/."""
        port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
        return f"{settings.SITE_SCHEME}://{self.slug}.{settings.BASE_DOMAIN}{port}/"


class Domain(DomainMixin):
    """A host name routed to a workspace (`<slug>.<BASE_DOMAIN>`; custom domains later)."""

    def __str__(self) -> str:
        return self.domain


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


# Roles that manage the workspace: rename, members, invitations.
MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Membership(BaseModel):
    """A user's role in a workspace. No membership, no access: the workspace answers 404."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user"),
        ]
        ordering: ClassVar[list[str]] = ["workspace", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGER_ROLES


def hash_token(token: str) -> str:
    """Invitation tokens are stored hashed: a database leak reveals no usable link."""
    return hashlib.sha256(token.encode()).hexdigest()


class Invitation(BaseModel):
    """An invitation by email to join a workspace with a role; usable once, until it expires."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        constraints: ClassVar[list[Any]] = [
            # One open invitation per address and workspace.
            models.UniqueConstraint(
                fields=["workspace", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.workspace}"

    @property
    def is_open(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )


class AISettings(BaseModel):
    """A workspace's AI configuration: model overrides and limits (empty = the plan's defaults)."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="ai_settings"
    )
    # {"smart": {"provider": "openai", "model": "gpt-4.1"}}: replaces an alias's primary route.
    model_overrides = models.JSONField(default=dict, blank=True)
    daily_token_limit = models.PositiveBigIntegerField(null=True, blank=True)
    user_daily_request_limit = models.PositiveIntegerField(null=True, blank=True)
    max_tokens_per_call = models.PositiveIntegerField(null=True, blank=True)
    # Hosts agents' `http_get` may fetch (exact host, or ".example.com" for its subdomains).
    http_allowed_domains = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "AI settings"
        verbose_name_plural = "AI settings"

    def __str__(self) -> str:
        return f"AI settings of {self.workspace}"


class Provider(models.TextChoices):
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server"


class ProviderKey(BaseModel):
    """A workspace's own provider key (BYOK), encrypted at rest; only its last 4 characters
    are ever shown. Calls routed to this provider use it instead of the platform's key."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="provider_keys")
    provider = models.CharField(max_length=32, choices=Provider.choices)
    encrypted_key = models.TextField()
    last4 = models.CharField(max_length=4)
    base_url = models.URLField(blank=True, help_text="Required for an OpenAI-compatible server.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["workspace", "provider"], name="provider_key_one_per_provider"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} key …{self.last4} ({self.workspace})"


class ApiKey(BaseModel):
    """A workspace's key for the public API. Only the sha256 of the secret is stored; the
    secret is shown once, at creation, and users recognise the key by its `prefix`."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, unique=True)
    hashed = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # None: settings.API_KEY_DEFAULT_RATE_LIMIT.
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Browser origins (`https://app.example.com`) allowed to call the API with this key (CORS);
    # none by default: a key is a server-side secret unless its owner says otherwise.
    allowed_origins = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering: ClassVar[list[str]] = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.workspace})"

    @property
    def status(self) -> str:
        """One of "active", "revoked", "expired" (revoked wins: it was decided on purpose)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def effective_rate_limit(self) -> int:
        """Requests per minute this key may make."""
        if self.rate_limit_per_minute is None:
            return int(settings.API_KEY_DEFAULT_RATE_LIMIT)
        return self.rate_limit_per_minute
