"""Model output → safe HTML. Markdown is parsed with raw HTML disabled (any `<script>` in an
answer is text), and the result is sanitised again with nh3 (Ammonia): an allow-list of tags
and attributes, links only to http(s) and mailto, so `javascript:` links and `onerror=` handlers
cannot survive even if the parser let something through. Images are not rendered: a model-made
image URL would load from anywhere as soon as the answer is shown."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from html import escape
from typing import Any

import nh3
from django.template.loader import render_to_string
from markdown_it import MarkdownIt

from apps.agents.models import ToolAudit
from apps.agents.tools.undo import undo_open
from apps.approvals.models import Level, PendingAction
from apps.approvals.policy import autonomy_settings
from apps.approvals.services import may_decide
from apps.workspaces.models import Membership

TAGS = {
    "p", "br", "hr", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s",
    "del", "code", "pre", "a", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    md.disable("image")
    return md


def render_markdown(text: str) -> str:
    """Sanitised HTML for an answer."""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
        allowed_classes={"code": {f"language-{name}" for name in _LANGUAGES}},
    )


_LANGUAGES = (
    "python", "js", "javascript", "ts", "typescript", "bash", "sh", "shell", "json", "yaml",
    "sql", "html", "css", "go", "rust", "java", "c", "cpp", "ruby", "php", "text", "diff",
)  # fmt: skip


# [1] or [1, 3] in rendered text, outside code (markdown-it escapes nothing in brackets).
_CITATION = re.compile(r"\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
_CODE = re.compile(r"(<pre>.*?</pre>|<code>.*?</code>|<a [^>]*>.*?</a>)", re.DOTALL)


def render_answer(text: str, sources: Sequence[Mapping[str, Any]] = ()) -> str:
    """Sanitised HTML for an answer, its citations linked to the passages they cite. The links
    are built after sanitising, from stored passages only (our own URLs, integer numbers)."""
    html = render_markdown(text)
    urls = {int(s["n"]): str(s["url"]) for s in sources if s.get("cited")}
    if not urls:
        return html

    def link(match: re.Match[str]) -> str:
        numbers = [int(part) for part in match.group(1).split(",")]
        if not all(n in urls for n in numbers):
            return match.group(0)
        return "".join(
            f'<a class="cite" href="{escape(urls[n])}" data-source="{n}" '
            f'title="Source {n}">[{n}]</a>'
            for n in numbers
        )

    parts = _CODE.split(html)
    return "".join(
        part if index % 2 else _CITATION.sub(link, part) for index, part in enumerate(parts)
    )


def cited_sources(sources: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The passages an answer cites, in citation order as stored (by number)."""
    return sorted((s for s in sources if s.get("cited")), key=lambda s: int(s["n"]))


def render_steps(steps: Sequence[Mapping[str, Any]], membership: Membership | None) -> str:
    """An answer's tool steps as cards (our template, escaped): a held call with its pending
    action (Approve / Reject for who may decide), an L2 call with Undo while it may be undone."""
    return render_to_string("agents/_steps.html", {"steps": steps_view(steps, membership)})


def steps_view(
    steps: Sequence[Mapping[str, Any]], membership: Membership | None
) -> list[dict[str, Any]]:
    action_ids = [s["approval_id"] for s in steps if s.get("approval_id")]
    actions = {a.pk: a for a in PendingAction.objects.filter(pk__in=action_ids)}
    undoable = [s["audit_id"] for s in steps if s.get("level") == Level.UNDO and s.get("audit_id")]
    audits = {a.pk: a for a in ToolAudit.objects.filter(pk__in=undoable)}
    undone = set(ToolAudit.objects.filter(undo_of__in=undoable).values_list("undo_of", flat=True))
    window = autonomy_settings().undo_window_seconds if audits else 0
    view = []
    for step in steps:
        item = dict(step)
        action = actions.get(step.get("approval_id") or 0)
        if action is not None:
            item["action"] = action
            item["can_decide"] = membership is not None and may_decide(action, membership)
        audit = audits.get(step.get("audit_id") or 0)
        if audit is not None:
            item["undone"] = audit.pk in undone
            item["can_undo"] = not item["undone"] and undo_open(audit, window_seconds=window)
        view.append(item)
    return view
