"""Operator CLI for the gateway: how support and newcomers try it.

python manage.py llm chat --workspace acme --alias smart [--stream] [--json] "text"
python manage.py llm budget --workspace acme [--json]
python manage.py llm synonym --workspace acme [NAME [ALIAS]] [--delete]
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.errors import ApplicationError
from apps.llm.services import (
    Actor,
    ChatRequest,
    ChatResponse,
    DoneEvent,
    ErrorEvent,
    GatewayError,
    Message,
    TokenEvent,
    call_scope_for,
    llm_budget_usage,
    llm_chat,
    llm_stream,
    model_synonym_delete,
    model_synonym_set,
    model_synonyms,
    run_sync,
)
from apps.traces.services import call_records_flush
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_by_slug

CLI_ACTOR = Actor("system", "cli")


def _response_json(response: ChatResponse) -> dict[str, Any]:
    return {
        "text": response.text,
        "alias": response.alias,
        "provider": response.provider,
        "model": response.model,
        "offline": response.offline,
        "usage": {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
            "cached_tokens": response.usage.cache_read_tokens,
        },
        "cost_micros": response.cost_micros,
        "cached": response.cached,
        "fallback_used": response.fallback_used,
        "finish_reason": response.finish_reason,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls
        ],
        "trace_id": response.trace_id,
        "request_id": response.request_id,
        "duration_ms": round(response.duration_ms, 1),
    }


class Command(BaseCommand):
    help = "Try the LLM gateway: chat through an alias, or show today's budgets."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        chat = sub.add_parser("chat", help="Send one message through the gateway.")
        chat.add_argument("--workspace", required=True, help="workspace slug, e.g. acme")
        chat.add_argument("--alias", default="smart")
        chat.add_argument("--system", default="", help="an optional system prompt")
        chat.add_argument("--max-tokens", type=int, default=None)
        chat.add_argument("--no-cache", action="store_true")
        chat.add_argument("--stream", action="store_true")
        chat.add_argument("--json", action="store_true", dest="as_json")
        chat.add_argument("text")
        budget = sub.add_parser(
            "budget", help="Show each budget scope's used / reserved / limit today."
        )
        budget.add_argument("--workspace", required=True)
        budget.add_argument("--json", action="store_true", dest="as_json")
        synonym = sub.add_parser(
            "synonym",
            help="List the workspace's model synonyms; NAME ALIAS sets one (e.g. gpt-4o-mini "
            "fast: API clients that only accept OpenAI's names), NAME --delete removes it.",
        )
        synonym.add_argument("--workspace", required=True)
        synonym.add_argument("name", nargs="?")
        synonym.add_argument("alias", nargs="?")
        synonym.add_argument("--delete", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = workspace_by_slug(slug=options["workspace"])
        if workspace is None:
            raise CommandError(f"No workspace “{options['workspace']}”.")
        if options["action"] == "budget":
            self._budget(workspace, as_json=options["as_json"])
            return
        if options["action"] == "synonym":
            self._synonym(workspace, options)
            return
        messages = [Message("system", options["system"])] if options["system"] else []
        request = ChatRequest(
            alias=options["alias"],
            messages=(*messages, Message("user", options["text"])),
            max_tokens=options["max_tokens"],
            cache=not options["no_cache"],
        )
        try:
            if options["stream"]:
                response = self._stream(workspace, request, quiet=options["as_json"])
            else:
                response = llm_chat(
                    workspace=workspace, actor=CLI_ACTOR, feature="cli.chat", request=request
                )
        except GatewayError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        finally:
            call_records_flush()  # so the call log and trace exist when this command returns
        if options["as_json"]:
            self.stdout.write(json.dumps(_response_json(response), indent=2))
        elif not options["stream"]:
            self.stdout.write(response.text)
            label = " (offline local model)" if response.offline else ""
            self.stderr.write(
                f"— {response.alias} → {response.provider}/{response.model}{label}, "
                f"{response.usage.input_tokens}+{response.usage.output_tokens} tokens, "
                f"${response.cost_micros / 1e6:.6f}{', cached' if response.cached else ''}, "
                f"trace {response.trace_id}"
            )

    def _synonym(self, workspace: Workspace, options: dict[str, Any]) -> None:
        name, alias = options["name"], options["alias"]
        try:
            if name and options["delete"]:
                model_synonym_delete(workspace=workspace, name=name)
            elif name and alias:
                model_synonym_set(workspace=workspace, name=name, alias=alias)
            elif name:
                raise CommandError("Give NAME and ALIAS to set a synonym, or NAME --delete.")
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for synonym, target in sorted(model_synonyms(workspace=workspace).items()):
            self.stdout.write(f"{synonym} → {target}")

    def _stream(self, workspace: Workspace, request: ChatRequest, *, quiet: bool) -> ChatResponse:
        scope = call_scope_for(workspace=workspace, actor=CLI_ACTOR, feature="cli.chat")

        async def run() -> ChatResponse:
            done: ChatResponse | None = None
            async for event in llm_stream(scope=scope, request=request):
                if isinstance(event, TokenEvent) and not quiet:
                    self.stdout.write(event.text, ending="")
                    self.stdout.flush()
                elif isinstance(event, ErrorEvent):
                    self.stderr.write(f"\n[error: {event.message}]")
                elif isinstance(event, DoneEvent):
                    done = event.response
            if not quiet:
                self.stdout.write("")
            if done is None:
                raise CommandError("The stream ended without an answer (truncated).")
            return done

        return run_sync(run())

    def _budget(self, workspace: Workspace, *, as_json: bool) -> None:
        rows = llm_budget_usage(workspace=workspace)
        if as_json:
            self.stdout.write(
                json.dumps(
                    [
                        {
                            "scope": r.name,
                            "used": r.used,
                            "reserved": r.reserved,
                            "limit": r.limit,
                            "unit": r.unit,
                            "kind": r.kind,
                            "resets_at": r.resets_at,
                        }
                        for r in rows
                    ],
                    indent=2,
                )
            )
            return
        for r in rows:
            self.stdout.write(
                f"{r.name:<24} used {r.used:>10,} reserved {r.reserved:>8,} limit {r.limit:>12,} {r.unit}"
                f"  ({r.fraction:.0%}, resets {r.resets_at})"
            )
