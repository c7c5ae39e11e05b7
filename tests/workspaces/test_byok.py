"""BYOK: a workspace's own provider key is encrypted at rest (MultiFernet, rotatable), used for
its calls only, and never appears in clear in logs, traces, Redis, errors or a database dump."""

from __future__ import annotations

import logging
import secrets
import subprocess
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from aisaas.devstack.postgres import _bin_dir
from apps.common import crypto
from apps.common.errors import ApplicationError
from apps.llm.core.errors import ProviderError
from apps.llm.services import llm_chat
from apps.traces.models import LlmCallLog
from apps.traces.services import call_records_flush
from apps.workspaces.ai import (
    provider_key_delete,
    provider_key_set,
    provider_keys_decrypted,
)
from apps.workspaces.models import ProviderKey, User, Workspace
from tests.fakes import FakeOpenAIServer
from tests.gateway_support import (
    ask,
    committed,
    gateway_settings,
    redis_contents,
    unique,
    user_actor,
)

pytestmark = pytest.mark.django_db


def new_key() -> str:
    return "sk-test-BYOK-" + secrets.token_hex(16)


@pytest.fixture(autouse=True)
def _offline_glue() -> Iterator[None]:
    with gateway_settings():
        yield


@pytest.fixture
def fernet_keys() -> tuple[str, str]:
    """Two fresh encryption keys: (old, new)."""
    return Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def encryption_keys(fernet_keys: tuple[str, str]) -> Iterator[None]:
    """FIELD_ENCRYPTION_KEYS = [old], ready to be changed with `use_keys`."""
    with use_keys(fernet_keys[0]):
        yield


@contextmanager
def use_keys(*keys: str) -> Iterator[None]:
    """FIELD_ENCRYPTION_KEYS = keys inside the block, with the cached MultiFernet rebuilt."""
    with override_settings(FIELD_ENCRYPTION_KEYS=list(keys)):
        crypto.reset_cache()
        try:
            yield
        finally:
            crypto.reset_cache()


def test_a_key_is_stored_encrypted_and_shown_by_its_last_four(acme: Workspace, owner: User) -> None:
    # given
    key = new_key()

    # when
    row = provider_key_set(workspace=acme, provider="openai", key=f"  {key}\n", actor=owner)

    # then the row holds ciphertext and the last four characters only
    row.refresh_from_db()
    assert key not in row.encrypted_key
    assert crypto.decrypt(row.encrypted_key) == key
    assert row.last4 == key[-4:]
    assert str(row) == f"OpenAI key …{key[-4:]} (Acme)"
    # and the decrypted key, held in memory for a client, never prints itself
    (decrypted,) = provider_keys_decrypted(workspace=acme)
    assert decrypted.key == key
    assert key not in repr(decrypted)
    assert key not in str(decrypted)


def test_setting_a_key_again_replaces_it(acme: Workspace) -> None:
    first, second = new_key(), new_key()
    provider_key_set(workspace=acme, provider="openai", key=first)

    provider_key_set(workspace=acme, provider="openai", key=second)

    assert [k.key for k in provider_keys_decrypted(workspace=acme)] == [second]
    provider_key_delete(workspace=acme, provider="openai")
    assert provider_keys_decrypted(workspace=acme) == []


@pytest.mark.parametrize(
    ("provider", "key", "base_url", "field"),
    [
        ("openai", "sk-has a-space-SECRETPART", "", "key"),
        ("openai", "short", "", "key"),
        ("mistral", "sk-SECRETPART-0123456789", "", "provider"),
        ("openai_compatible", "sk-SECRETPART-0123456789", "", "base_url"),
    ],
)
def test_a_key_that_cannot_be_stored_is_refused_without_quoting_it(
    acme: Workspace, provider: str, key: str, base_url: str, field: str
) -> None:
    with pytest.raises(ApplicationError) as refused:
        provider_key_set(workspace=acme, provider=provider, key=key, base_url=base_url)

    assert refused.value.field == field
    assert "SECRETPART" not in refused.value.message
    assert not ProviderKey.objects.filter(workspace=acme).exists()


def test_rotation_re_encrypts_under_the_new_key_so_the_old_one_can_go(
    acme: Workspace, globex: Workspace, encryption_keys: None, fernet_keys: tuple[str, str]
) -> None:
    # given two workspaces' keys encrypted under the old encryption key
    old, new = fernet_keys
    ours, theirs = new_key(), new_key()
    provider_key_set(workspace=acme, provider="openai", key=ours)
    provider_key_set(workspace=globex, provider="anthropic", key=theirs)

    # when the new key is put first and the command runs
    out = StringIO()
    with use_keys(new, old):
        call_command("rotate_encryption_keys", stdout=out)

    # then it reports every key, and with the old key removed both still decrypt
    assert out.getvalue().strip() == (
        f"Re-encrypted {ProviderKey.objects.count()} provider keys under the newest key."
    )
    with use_keys(new):
        assert [k.key for k in provider_keys_decrypted(workspace=acme)] == [ours]
        assert [k.key for k in provider_keys_decrypted(workspace=globex)] == [theirs]
    # and the old key alone no longer can
    with use_keys(old), pytest.raises(crypto.InvalidToken):
        provider_keys_decrypted(workspace=acme)


def test_rotation_is_all_or_nothing(
    acme: Workspace, globex: Workspace, encryption_keys: None, fernet_keys: tuple[str, str]
) -> None:
    # given one key under the new encryption key and one under a key that was dropped too early
    _, new = fernet_keys
    provider_key_set(workspace=acme, provider="openai", key=new_key())  # under old
    with use_keys(new):
        provider_key_set(workspace=globex, provider="openai", key=new_key())
        before = dict(ProviderKey.objects.values_list("pk", "encrypted_key"))

        # when the rotation runs without the old key
        with pytest.raises(CommandError, match="nothing was changed"):
            call_command("rotate_encryption_keys", stdout=StringIO())

    # then no row changed
    assert dict(ProviderKey.objects.values_list("pk", "encrypted_key")) == before


def _pg_dump() -> bytes:
    """A plain-SQL dump of the test database (committed data only), as an attacker would take."""
    db = connection.settings_dict
    argv = [
        str(_bin_dir() / "pg_dump"),
        f"--host={db['HOST']}",
        f"--port={db['PORT']}",
        f"--username={db['USER']}",
        f"--dbname={db['NAME']}",
        "--no-owner",
    ]
    return subprocess.run(argv, capture_output=True, check=True, timeout=120).stdout


def _exception_texts(exc: BaseException) -> str:
    """Everything an error tracker could show of `exc`: messages, reprs, the traceback, and
    the chained exceptions (the SDK's own error is kept as context)."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), str(getattr(seen, "message", ""))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def test_a_byok_key_never_appears_in_clear(
    acme: Workspace,
    owner: User,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given acme's own OpenAI key, committed (a dump sees committed rows only), and OpenAI's
    # endpoint served by the fake vendor, which accepts that key only
    caplog.set_level(logging.DEBUG)
    key = new_key()
    row = committed(lambda: provider_key_set(workspace=acme, provider="openai", key=key))
    feature = f"byok.{secrets.token_hex(4)}"
    try:
        with (
            FakeOpenAIServer(api_key=key) as server,
            gateway_settings(OPENAI_BASE_URL=server.base_url),
        ):
            # when acme calls OpenAI with it
            answer = llm_chat(
                workspace=acme,
                actor=user_actor(owner),
                feature=feature,
                request=ask(unique("Which plan suits us?"), alias="extract"),
            )
            # and again after the vendor revoked it
            server.api_key = "sk-someone-else-entirely"
            with pytest.raises(ProviderError) as rejected:
                llm_chat(
                    workspace=acme,
                    actor=user_actor(owner),
                    feature=feature,
                    request=ask(unique("And now?"), alias="extract"),
                )
            queued = redis_contents()
        committed(call_records_flush)
        dump = _pg_dump()
        stored = committed(
            lambda: [
                (str(c.__dict__), str(c.trace.__dict__))
                for c in LlmCallLog.objects.filter(workspace=acme, feature=feature)
                .select_related("trace")
                .order_by("created_at")
            ]
        )
    finally:
        committed(lambda: LlmCallLog.objects.filter(workspace=acme, feature=feature).delete())
        committed(lambda: ProviderKey.objects.filter(pk=row.pk).delete())

    # then the key was really used: the vendor saw it, the answer came, the rejection is typed
    assert (answer.provider, answer.model) == ("openai", "gpt-4.1-mini")
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert rejected.value.kind == "auth"
    assert rejected.value.message == "openai rejected the API key (HTTP 401)."
    # and two call log rows, marked BYOK, record both calls
    assert len(stored) == 2
    assert all("'byok': True" in call for call, _ in stored)
    assert "'status': 'error'" in stored[1][0]
    # and the clear key is nowhere: the error, the logs, the output, the rows, Redis, the dump
    assert key not in _exception_texts(rejected.value)
    logged = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert "HTTP Request" in logged  # the SDK's logging was captured, at DEBUG
    assert key not in logged
    printed = capsys.readouterr()
    assert key not in printed.out + printed.err
    assert key not in "\n".join(call + trace for call, trace in stored)
    assert key.encode() not in queued
    assert key.encode() not in redis_contents()
    assert key.encode() not in dump
    # while the encrypted value is in the dump: the check looks at the right data
    assert row.encrypted_key.encode() in dump
    assert f"CREATE TABLE public.{ProviderKey._meta.db_table}".encode() in dump


def test_another_workspace_never_uses_acmes_key(
    acme: Workspace, globex: Workspace, outsider: User
) -> None:
    # given acme's OpenAI key and OpenAI's endpoint served by the fake
    key = new_key()
    provider_key_set(workspace=acme, provider="openai", key=key)
    with FakeOpenAIServer() as server, gateway_settings(OPENAI_BASE_URL=server.base_url):
        # when globex, which has no key of its own, asks the same alias
        answer = llm_chat(
            workspace=globex,
            actor=user_actor(outsider),
            feature="chat",
            request=ask(unique("hello"), alias="extract"),
        )

    # then its call stays offline: acme's key is never sent for it
    assert (answer.provider, answer.offline) == ("local", True)
    assert server.requests == []
