from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest


@dataclass(frozen=True, slots=True)
class PublicSite:
    """What account mail says the site is (allauth's templates read `name` and `domain`)."""

    domain: str
    name: str


def on_public_site(url: str) -> str:
    """`url` moved onto SITE_URL's scheme and host (its path and query kept)."""
    site, parts = urlsplit(settings.SITE_URL), urlsplit(url)
    return urlunsplit((site.scheme, site.netloc, parts.path, parts.query, parts.fragment))


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Sign-up lives on the public host; a workspace host only logs people in.
        return getattr(request, "workspace", None) is None

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys failed logins on the Host (`site.domain:login`): every workspace host,
        # and sign-up creates them freely, gave an attacker five more guesses. The lockout is
        # the account's wherever it is tried (allauth's per-IP limit stands beside it).
        login = credentials.get("email", credentials.get("username", ""))
        return f"account:{str(login).strip().lower()}"

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        # allauth builds links (password reset, email confirmation, sign-up) and the site name
        # from the request's Host, which any workspace host or a forged header sets: a reset
        # link could point at a host the attacker reads. Mail names SITE_URL only.
        netloc = urlsplit(settings.SITE_URL).netloc
        context = {
            key: on_public_site(value) if key.endswith("_url") and isinstance(value, str) else value
            for key, value in context.items()
        }
        context["current_site"] = PublicSite(domain=netloc, name=netloc)
        super().send_mail(template_prefix, email, context)

    def clean_email(self, email: str) -> str:
        # `.invalid` (RFC 2606) receives no mail, and the system owner's address lives there.
        if email.rsplit("@", 1)[-1].lower().rstrip(".").endswith(".invalid"):
            raise ValidationError("Use an address that can receive email.")
        return str(super().clean_email(email))
