"""Who has a workspace page open: the workspace socket marks its user on connect and on every
ping (pages ping every 30 s), and the mark lapses after `PRESENCE_SECONDS` without one. Used to
email only the people who would not see a live notification. Cache keys carry the schema."""

from __future__ import annotations

from django.core.cache import cache

PRESENCE_SECONDS = 90


def presence_mark(user_id: int) -> None:
    cache.set(f"presence:{user_id}", 1, PRESENCE_SECONDS)


def presence_clear(user_id: int) -> None:
    cache.delete(f"presence:{user_id}")


def online(user_id: int) -> bool:
    return bool(cache.get(f"presence:{user_id}"))
