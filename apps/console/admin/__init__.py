"""Trace search, trace pages, downloads and replay for platform staff (issue #8, items 1, 2, 6).

- LlmTrace (support, superusers): filters, search by id or text, a page per trace rendering the
  conversation, an audited JSON download, the unmasked copy on request, replay with a diff.
- LlmCallLog (support, finance, superusers): metadata and cost only, never content.
- TraceAccess (superusers): the read-only audit of who opened, downloaded or replayed what.

Views read the request, call one service (apps/console/support.py, replay.py) and render.
Importing the package registers the three ModelAdmins (Django autodiscovers `apps.console.admin`).
"""

from . import access, calls, traces, workspaces

__all__ = ["access", "calls", "traces", "workspaces"]
