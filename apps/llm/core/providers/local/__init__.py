"""The deterministic offline provider: `LocalProvider`."""

from .provider import LocalProvider

__all__ = ["LocalProvider"]
