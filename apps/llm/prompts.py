"""Prompts as code: versioned files under `prompts/`, rendered with strict variables.

    prompts/config.yaml               the active version of each prompt
    prompts/<name>/v1.md, v2.md, …    versions (old ones stay: historical outputs, regressions)
    prompts/<name>/schema.json        JSON Schema of the input variables
    prompts/<name>/eval.jsonl         the eval set (apps/evals)

A version file may open with YAML front matter (`role`, `alias`, `max_tokens`,
`response_schema`): how the product calls that version, read by the product and the eval runner
alike. The body uses `{{ variable }}` and nothing else; every variable must be given, no other
may be, and the values must validate against schema.json.

Plain Python: Django settings are read only by `default_library` (PROMPTS_DIR, PROMPT_VERSIONS).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, TypedDict

import jsonschema
import yaml

from apps.common.errors import ApplicationError
from apps.llm.core.types import ResponseFormat

# A prompt name: dotted words, so folder names stay filesystem-friendly ("chat.system").
NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$")
VERSION = re.compile(r"^v[1-9][0-9]*$")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_META_KEYS = frozenset({"role", "alias", "max_tokens", "response_schema", "description"})
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "prompts"


class PromptError(ApplicationError):
    """A prompt that cannot be loaded or rendered; `field` names the variable at fault.

    An ApplicationError rather than the gateway's InvalidRequestError: prompts are rendered
    by business code before any gateway call, and edges already turn ApplicationError into a
    message (forms) or a 400 (API) with `field` → `param`.
    """

    code = "prompt_error"


class PromptFields(TypedDict):
    """What a ChatRequest takes from a rendered prompt (`ChatRequest(..., **fields)`)."""

    prompt_name: str
    prompt_version: str


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One parsed version file: the template body, its front matter and the input schema."""

    name: str
    version: str
    path: Path
    body: str
    content_hash: str  # sha256 of the whole file: what traces and baselines pin
    variables: frozenset[str]
    schema: dict[str, Any]
    role: str = "system"  # the message the rendered text becomes: "system" or "user"
    alias: str = "smart"
    max_tokens: int | None = None
    response_schema: dict[str, Any] | None = None


def variables_from(prompt: PromptVersion, text: str) -> dict[str, str] | None:
    """The variables that rendered `text` from `prompt` (a trace's message back to an eval
    example's `vars`); None when `text` was not rendered from it."""
    parts = _VARIABLE.split(prompt.body.strip())
    pattern, seen = "", set()
    for index, part in enumerate(parts):
        if index % 2 == 0:
            pattern += re.escape(part)
        elif part in seen:
            pattern += f"(?P={part})"
        else:
            seen.add(part)
            pattern += f"(?P<{part}>.*?)"
    match = re.fullmatch(pattern, text.strip(), re.DOTALL)
    return match.groupdict() if match else None


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A prompt rendered for one call; `request_fields()` goes into ChatRequest for the trace."""

    name: str
    version: str
    text: str
    content_hash: str
    role: str = "system"
    alias: str = "smart"
    max_tokens: int | None = None
    response_schema: dict[str, Any] | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)

    def request_fields(self) -> PromptFields:
        return {"prompt_name": self.name, "prompt_version": self.version}

    def response_format(self) -> ResponseFormat | None:
        """Structured output the version asks for (front matter `response_schema`), if any."""
        if self.response_schema is None:
            return None
        return ResponseFormat(
            type="json_schema", json_schema=self.response_schema, name=self.name.replace(".", "_")
        )


class PromptLibrary:
    """The prompts under `root`, with the active versions of config.yaml and `overrides`."""

    def __init__(self, root: Path | str, overrides: Mapping[str, str] | None = None):
        self.root = Path(root)
        self.overrides = dict(overrides or {})

    def names(self) -> list[str]:
        """Every prompt: a folder holding at least one version file."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and NAME.match(p.name) and _versions(p)
        )

    def versions(self, name: str) -> list[str]:
        return _versions(self._folder(name))

    def active_version(self, name: str) -> str:
        """`overrides`, else config.yaml, else the newest version."""
        known = self.versions(name)
        configured = _config(self.root / "config.yaml").get(name)
        version = self.overrides.get(name) or configured or known[-1]
        if version not in known:
            source = "an override" if name in self.overrides else "prompts/config.yaml"
            raise PromptError(
                f"{source} selects {name} {version}, which does not exist "
                f"(versions: {', '.join(known)}).",
                field="version",
            )
        return str(version)

    def load(self, name: str, version: str | None = None) -> PromptVersion:
        version = version or self.active_version(name)
        known = self.versions(name)
        if version not in known:
            raise PromptError(
                f"Prompt {name} has no version {version!r} (versions: {', '.join(known)}).",
                field="version",
            )
        folder = self._folder(name)
        return _parse(folder / f"{version}.md", folder / "schema.json", name, version)

    def render(
        self, name: str, variables: Mapping[str, Any], *, version: str | None = None
    ) -> RenderedPrompt:
        prompt = self.load(name, version)
        given = set(variables)
        if unknown := sorted(given - prompt.variables):
            raise PromptError(
                f"Prompt {name} {prompt.version} has no variable {unknown[0]!r} "
                f"(variables: {', '.join(sorted(prompt.variables)) or 'none'}).",
                field=unknown[0],
            )
        if missing := sorted(prompt.variables - given):
            raise PromptError(
                f"Prompt {name} {prompt.version} needs the variable {missing[0]!r}.",
                field=missing[0],
            )
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(prompt.schema).iter_errors(dict(variables))
        )
        if error is not None:
            where = str(error.path[0]) if error.path else None
            subject = f"variable {where!r} is" if where else "variables are"
            raise PromptError(f"Prompt {name}: {subject} invalid: {error.message}", field=where)
        text = _VARIABLE.sub(lambda m: str(variables[m.group(1)]), prompt.body)
        return RenderedPrompt(
            name=name,
            version=prompt.version,
            text=text,
            content_hash=prompt.content_hash,
            role=prompt.role,
            alias=prompt.alias,
            max_tokens=prompt.max_tokens,
            response_schema=prompt.response_schema,
            variables=dict(variables),
        )

    def _folder(self, name: str) -> Path:
        folder = self.root / name
        if not NAME.match(name) or not folder.is_dir() or not _versions(folder):
            raise PromptError(
                f"No prompt {name!r} (prompts: {', '.join(self.names()) or 'none'}).",
                field="name",
            )
        return folder


def _versions(folder: Path) -> list[str]:
    found = [p.stem for p in folder.glob("v*.md") if VERSION.match(p.stem)]
    return sorted(found, key=lambda v: int(v[1:]))


@cache
def _config(path: Path) -> dict[str, str]:
    """config.yaml's `active:` map, parsed once per process."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    active = data.get("active") or {}
    if not isinstance(active, dict):
        raise PromptError(f"{path}: `active` must map prompt names to versions.")
    return {str(k): str(v) for k, v in active.items()}


@cache
def _parse(path: Path, schema_path: Path, name: str, version: str) -> PromptVersion:
    """One version file, parsed and checked once per process (files are immutable in a deploy)."""
    raw = path.read_bytes()
    content = raw.decode("utf-8")
    meta: dict[str, Any] = {}
    body = content
    if match := _FRONT_MATTER.match(content):
        meta = yaml.safe_load(match.group(1)) or {}
        body = content[match.end() :]
        if not isinstance(meta, dict) or (extra := set(meta) - _META_KEYS):
            raise PromptError(f"{path}: unknown front matter {sorted(extra) if meta else meta}.")
    variables = frozenset(_VARIABLE.findall(body))
    leftover = _VARIABLE.sub("", body)
    if "{{" in leftover or "}}" in leftover:
        raise PromptError(f"{path}: a `{{{{ … }}}}` that is not `{{{{ variable_name }}}}`.")
    if not schema_path.exists():
        raise PromptError(f"Prompt {name} has no schema.json describing its variables.")
    schema = json.loads(schema_path.read_text())
    declared = set(schema.get("properties", {}))
    if variables != declared:
        raise PromptError(
            f"{path}: variables {sorted(variables)} differ from schema.json's properties "
            f"{sorted(declared)}."
        )
    role = meta.get("role", "system")
    if role not in ("system", "user"):
        raise PromptError(f"{path}: role must be system or user, not {role!r}.")
    response_schema = meta.get("response_schema")
    if response_schema is not None:
        jsonschema.Draft202012Validator.check_schema(response_schema)
    return PromptVersion(
        name=name,
        version=version,
        path=path,
        body=body.strip() + "\n",
        content_hash=hashlib.sha256(raw).hexdigest(),
        variables=variables,
        schema=schema,
        role=role,
        alias=str(meta.get("alias", "smart")),
        max_tokens=meta.get("max_tokens"),
        response_schema=response_schema,
    )


def parse_overrides(text: str) -> dict[str, str]:
    """`"chat.system=v2,conversation.title=v1"` → a dict (the PROMPT_VERSIONS variable)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise PromptError(f"PROMPT_VERSIONS must look like name=v2,other=v1, not {text!r}.")
    return {k.strip(): v.strip() for k, v in pairs}


@lru_cache(maxsize=8)
def _library(root: str, overrides: tuple[tuple[str, str], ...]) -> PromptLibrary:
    return PromptLibrary(root, dict(overrides))


def default_library() -> PromptLibrary:
    """The glue: PROMPTS_DIR and PROMPT_VERSIONS from Django settings when configured, else
    from the environment, else the repository's prompts/ and config.yaml alone."""
    root: str | Path = os.environ.get("PROMPTS_DIR") or DEFAULT_ROOT
    overrides = parse_overrides(os.environ.get("PROMPT_VERSIONS", ""))
    try:
        from django.conf import settings

        if settings.configured:
            root = getattr(settings, "PROMPTS_DIR", root)
            overrides = dict(getattr(settings, "PROMPT_VERSIONS", overrides))
    except ImportError:  # plain Python (scripts, the core's tests)
        pass
    return _library(str(root), tuple(sorted(overrides.items())))


def render_prompt(
    name: str, variables: Mapping[str, Any], version: str | None = None
) -> RenderedPrompt:
    """Render `name` (its active version unless `version` is given) with strict variables."""
    return default_library().render(name, variables, version=version)


def clear_caches() -> None:
    """Forget parsed files (tests that write prompt files; a dev shell after an edit)."""
    _config.cache_clear()
    _parse.cache_clear()
    _library.cache_clear()
