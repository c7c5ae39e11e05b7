"""Model output → safe HTML. Markdown is parsed with raw HTML disabled (any `<script>` in an
answer is text), and the result is sanitised again with nh3 (Ammonia): an allow-list of tags
and attributes, links only to http(s) and mailto, so `javascript:` links and `onerror=` handlers
cannot survive even if the parser let something through. Images are not rendered: a model-made
image URL would load from anywhere as soon as the answer is shown."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

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
