"""`/v1/models` and the names a request may give as `model`: the aliases the key's scopes
allow, the workspace's synonyms for them, and `agent:<slug>` for keys with `agents`."""

from __future__ import annotations

from apps.agents.completions import agent_slugs, is_agent_model
from apps.llm.services import model_resolve, model_synonyms, routing_table

from . import wire
from .admission import principal_for
from .principal import Principal, in_db
from .request import Request

_KINDS = {"chat": "chat", "embeddings": "embed"}


async def model_alias(principal: Principal, model: str) -> str:
    """The alias `model` names for this key's workspace (an alias, or one of its synonyms);
    anything else is returned as it is, for the gateway to refuse with the list of aliases.
    The database is read only for a name that is not an alias."""
    if model in routing_table().names() or is_agent_model(model):
        return model
    workspace = principal.api_key.workspace
    return await in_db(lambda: model_resolve(workspace=workspace, model=model))


async def _visible(principal: Principal) -> list[str]:
    """Every model name this key may use, sorted: aliases, their synonyms, agents."""
    api_key = principal.api_key
    table = routing_table()
    aliases = {
        a for scope, kind in _KINDS.items() if scope in api_key.scopes for a in table.names(kind)
    }

    def read() -> list[str]:
        names = sorted(aliases)
        synonyms = model_synonyms(workspace=api_key.workspace)
        names += sorted(name for name, alias in synonyms.items() if alias in aliases)
        if "agents" in api_key.scopes:
            names += [f"agent:{slug}" for slug in agent_slugs(workspace=api_key.workspace)]
        return names

    return await in_db(read)


async def list_models(request: Request) -> None:
    principal = await principal_for(request, need=None, feature="api.models", counted=True)
    await request.json(200, wire.models(await _visible(principal)))


async def get_model(request: Request) -> None:
    """One model name this key may use; 404 (OpenAI's `model_not_found`) for any other,
    including another workspace's synonyms and agents."""
    principal = await principal_for(request, need=None, feature="api.models", counted=True)
    model_id = request.path_params["model_id"]
    if model_id not in await _visible(principal):
        raise wire.ApiError(
            404,
            f"The model '{model_id}' does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    await request.json(200, wire.models([model_id])["data"][0])
