"""factory-boy factories: rows only; the named actors live in conftest.

Rows of a workspace schema (chat messages) are created inside `schema_context` by the caller.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

import factory
from django.conf import settings
from django.utils import timezone

from apps.agents.models import Message
from apps.billing.ledger import ledger_post
from apps.billing.models import LedgerEntry, Outcome, OutcomeStatus
from apps.traces.models import LlmCallLog, LlmTrace
from apps.workspaces.api_keys import API_KEY_DEFAULT_SCOPES, SECRET_PREFIX, api_key_hash
from apps.workspaces.models import ApiKey, Invitation, Membership, Role, User, hash_token

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class InvitationFactory(factory.django.DjangoModelFactory[Invitation]):
    """Pass `token=` to know the link's token; the row stores only its hash."""

    class Meta:
        model = Invitation
        exclude = ("token",)

    token = factory.Sequence(lambda n: f"invitation-token-{n}")
    token_hash = factory.LazyAttribute(lambda o: hash_token(o.token))
    email = factory.Sequence(lambda n: f"invitee{n}@example.test")
    role = Role.MEMBER
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class LedgerEntryFactory(factory.django.DjangoModelFactory[LedgerEntry]):
    """An entry posted through `ledger_post`, so the balance row moves with it (the ledger is
    append-only: entries are never written around it). Pass `workspace=`."""

    class Meta:
        model = LedgerEntry

    delta_micros = 1_000_000
    reason = "adjustment"
    idempotency_key = factory.Sequence(lambda n: f"test-entry:{uuid.uuid4().hex}:{n}")
    revenue_micros = 0
    metadata = factory.LazyFunction(dict)

    @classmethod
    def _create(cls, model_class: type[LedgerEntry], *args: Any, **kwargs: Any) -> LedgerEntry:
        workspace = kwargs.pop("workspace")
        return ledger_post(workspace_id=workspace.pk, **kwargs).entry


class OutcomeFactory(factory.django.DjangoModelFactory[Outcome]):
    """A pending outcome, its dispute window as long as `outcome_record` would give it."""

    class Meta:
        model = Outcome

    kind = "ticket resolved"
    price_micros = 1_000
    external_id = factory.Sequence(lambda n: f"outcome-{uuid.uuid4().hex[:8]}-{n}")
    status = OutcomeStatus.PENDING
    window_ends_at = factory.LazyFunction(
        lambda: timezone.now() + timedelta(days=settings.OUTCOME_DISPUTE_WINDOW_DAYS)
    )


class LlmCallLogFactory(factory.django.DjangoModelFactory[LlmCallLog]):
    """A call-log row as `call_records_flush` stores it: a user's offline chat call."""

    class Meta:
        model = LlmCallLog

    call_id = factory.LazyFunction(uuid.uuid4)
    request_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    trace_id = factory.LazyFunction(uuid.uuid4)
    actor_type = "user"
    actor_id = "1"
    feature = "chat"
    alias = "smart"
    provider = "local"
    model = "local-smart"
    status = "ok"
    input_tokens = 40
    output_tokens = 12
    cost_micros = 1_234
    duration_ms = 321.0
    offline = True
    created_at = factory.LazyFunction(timezone.now)


class LlmTraceFactory(factory.django.DjangoModelFactory[LlmTrace]):
    """A trace and the call-log row it belongs to (same workspace, trace id and time)."""

    class Meta:
        model = LlmTrace

    call = factory.SubFactory(
        LlmCallLogFactory,
        workspace=factory.SelfAttribute("..workspace"),
        created_at=factory.SelfAttribute("..created_at"),
    )
    trace_id = factory.SelfAttribute("call.trace_id")
    messages = factory.LazyFunction(lambda: [{"role": "user", "content": "Hello"}])
    params = factory.LazyFunction(lambda: {"max_tokens": 512, "temperature": None, "stream": False})
    response = "Hello! How can I help?"
    created_at = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory[Message]):
    """A complete answer of the agent in a conversation (create it in the workspace's schema)."""

    class Meta:
        model = Message

    role = Message.Role.ASSISTANT
    author_type = Message.Author.AGENT
    author_id = "1"
    content = "Hello"
    status = Message.Status.COMPLETE


class ApiKeyFactory(factory.django.DjangoModelFactory[ApiKey]):
    """A workspace API key. Pass `secret=` to know it (the row keeps its prefix and hash only);
    like any row of a factory it skips `api_key_create`'s checks (an expiry in the past is
    allowed)."""

    class Meta:
        model = ApiKey
        exclude = ("secret",)

    secret = factory.LazyFunction(lambda: SECRET_PREFIX + secrets.token_urlsafe(30))
    name = "test"
    prefix = factory.LazyAttribute(lambda o: o.secret[: len(SECRET_PREFIX) + 6])
    hashed = factory.LazyAttribute(lambda o: api_key_hash(o.secret))
    scopes = factory.LazyFunction(lambda: list(API_KEY_DEFAULT_SCOPES))
