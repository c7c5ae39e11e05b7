"""`python -m benchmarks.chat_streams.seed K`: the data one run needs, printed as JSON.

Run by the rig with the server's environment (its private database). Creates a workspace
`acme` with limits too high to refuse anything, one member, K conversations of that member
(already titled, so no naming call follows the first answer), and a signed-in session.
"""

from __future__ import annotations

import json
import sys

SLUG = "acme"
EMAIL = "bench@acme.test"
MARKER = "SEED "  # the line of stdout that carries the result


def seed(conversations: int) -> dict[str, object]:
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django_tenants.utils import schema_context

    from apps.agents.models import Conversation
    from apps.agents.services import agent_default
    from apps.workspaces.models import AISettings, User, Workspace
    from apps.workspaces.services import workspace_create

    user = User.objects.filter(email=EMAIL).first() or User.objects.create_user(EMAIL, None)
    workspace = Workspace.objects.filter(slug=SLUG).first() or workspace_create(
        name="Acme Inc.", slug=SLUG, owner=user
    )
    Workspace.objects.filter(pk=workspace.pk).update(plan="enterprise")
    AISettings.objects.update_or_create(
        workspace=workspace,
        defaults={"daily_token_limit": 10**15, "user_daily_request_limit": 2_000_000_000},
    )
    with schema_context(workspace.schema_name):
        agent = agent_default()
        made = Conversation.objects.bulk_create(
            [
                Conversation(agent=agent, user_id=user.pk, title="bench")
                for _ in range(conversations)
            ]
        )
        ids = [c.pk for c in made]
    host = f"{SLUG}.{settings.BASE_DOMAIN}"
    client = Client(HTTP_HOST=host)
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return {
        "host": host,
        "cookie": f"{name}={client.cookies[name].value}",
        "conversations": ids,
        "agent_alias": agent.alias,
    }


if __name__ == "__main__":
    result = seed(int(sys.argv[1]))
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
