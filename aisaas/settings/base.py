"""Settings shared by every environment. Values come from `aisaas.env` (environment + .env)."""

from __future__ import annotations

from urllib.parse import urlsplit

from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE

from aisaas.env import BASE_DIR, database_url, embedded_services, env, redis_url, stripe_fake

SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-change-me")
# Secret keys published in this repository (defaults, examples): production refuses to start with
# one, since anyone could sign sessions, password-reset links and agent tokens with it.
KNOWN_SECRET_KEYS = frozenset(
    {"dev-insecure-change-me", "change-me-in-production", "test-secret-key-not-for-production"}
)
DEBUG = env.bool("DEBUG", default=False)

# SITE_URL is the public host; workspaces live at <slug>.<its host>, on the same scheme and port.
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
_site = urlsplit(SITE_URL)
SITE_SCHEME = _site.scheme
BASE_DOMAIN = _site.hostname or "localhost"
SITE_PORT = _site.port
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[BASE_DOMAIN, f".{BASE_DOMAIN}", "127.0.0.1"])
# Hosts that serve the public schema (landing, sign-up, admin, API); any other host must be a
# workspace Domain or it answers 404.
PUBLIC_HOSTS = [BASE_DOMAIN, f"www.{BASE_DOMAIN}", "127.0.0.1"]
# CSRF: a form is accepted only from the exact origin of the host that serves it (Django's own
# check: scheme + Host). No trusted origins beyond it: "*.<BASE_DOMAIN>" let a token posted from
# any workspace's page through to every other workspace.
CSRF_TRUSTED_ORIGINS: list[str] = []

# Embedded servers this process may need to start (empty when both URLs are configured).
EMBEDDED_SERVICES = embedded_services()
REDIS_URL = redis_url()
# Every Redis client gives up on a command after this many seconds instead of waiting forever (a
# stalled Redis, a half-open connection after a failover): model calls answer 503 naming Redis,
# /healthz turns red. Blocking reads (the channel layer's, Celery's) wait their own time plus this.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=2.0)
REDIS_TIMEOUTS = {
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
}

# --- apps: public schema (SHARED_APPS) and workspace schemas (TENANT_APPS) -------------------
SHARED_APPS = [
    "django_tenants",
    "daphne",
    "apps.common",
    "apps.workspaces",
    "apps.traces",
    "apps.evals",
    "apps.billing",
    "apps.console",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_structlog",
    "django_celery_beat",
    "channels",
    "csp",
]
TENANT_APPS = [
    "apps.llm",
    "apps.rag",
    "apps.approvals",
    "apps.agents",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "workspaces.Workspace"
TENANT_DOMAIN_MODEL = "workspaces.Domain"
PUBLIC_SCHEMA_URLCONF = "aisaas.urls_public"
ROOT_URLCONF = "aisaas.urls"
AUTH_USER_MODEL = "workspaces.User"

MIDDLEWARE = [
    "apps.workspaces.middleware.WorkspaceHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "apps.workspaces.middleware.WorkspaceMembershipMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.workspaces.context_processors.workspace",
                "apps.approvals.context_processors.approvals",
            ],
        },
    },
]

ASGI_APPLICATION = "aisaas.asgi.application"

# Content-Security-Policy on every page (django-csp; Django 6 has the same built in): scripts only
# from our own static files (every script is a file; a template that needs an inline one gives it
# nonce="{{ request.csp_nonce }}"), nothing framed, no plugins. Styles allow inline `style=`
# attributes (templates use a few, and htmx injects its indicator style). 'self' covers the
# same-host WebSocket (connect-src) in CSP3 browsers.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- data -----------------------------------------------------------------------------------
DATABASES = {"default": env.db_url_config(database_url())}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Cache keys start with the schema name: no entry crosses workspaces (login rate limits
        # excepted: they count per account and per address on every host).
        "KEY_FUNCTION": "apps.common.tenancy.cache_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "OPTIONS": dict(REDIS_TIMEOUTS),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# Unset: each host keeps its own session. In production set it to ".<BASE_DOMAIN>" to share
# the login between the public host and workspace hosts.
SESSION_COOKIE_DOMAIN = env.str("SESSION_COOKIE_DOMAIN", default="") or None
# The CSRF cookie stays per host even when the session is shared: with a domain cookie Django
# also accepts a Referer from any host under it (HTTPS requests without an Origin header).
CSRF_COOKIE_DOMAIN = None

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Each consumer waits on Redis with a 5 s blocking read (channels_redis' brpop_timeout):
        # the read timeout must outlast it, or idle sockets are dropped with 1011 every few
        # seconds (django/channels_redis#422); without one, a stalled Redis hangs every socket.
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": 5 + REDIS_SOCKET_TIMEOUT,
                    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                }
            ],
            "prefix": "aisaas:channels",
        },
    }
}

# --- Celery (tenant-schemas-celery carries the sender's schema in every task) --------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
# kombu's BRPOP waits 1 s; a publish or a read waits at most the Redis timeout on top of it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": 1 + REDIS_SOCKET_TIMEOUT,
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
}
CELERY_REDIS_SOCKET_TIMEOUT = REDIS_SOCKET_TIMEOUT
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = REDIS_CONNECT_TIMEOUT
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
# Long agent runs (docs/architecture.md, "Long runs"): a message is acked only after its task
# finishes (acks_late) and given back if the pool child running it dies (reject_on_worker_lost);
# each worker takes one message at a time (prefetch 1). If the main worker process dies, Redis
# redelivers only after the visibility timeout, which stays far above the longest step (an
# hour); the run's lease (AGENT_RUN_LEASE_SECONDS, renewed every third of it) and the janitor
# resume it within seconds instead, and steps are idempotent, so a late redelivery finds
# nothing to do.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = 3600
AGENT_RUN_LEASE_SECONDS = env.int("AGENT_RUN_LEASE_SECONDS", default=15)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Keep our structured logging configuration in worker and beat processes.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "store-llm-call-records": {"task": "apps.traces.tasks.flush_call_records", "schedule": 2.0},
    # After-call writes Redis refused (kept in the database): performed once it answers again.
    "replay-after-call-writes": {
        "task": "apps.llm.tasks.replay_after_call_writes",
        "schedule": 10.0,
    },
    "release-expired-llm-reservations": {
        "task": "apps.llm.tasks.release_expired_reservations",
        "schedule": 60.0,
    },
    # Billing: monthly plan grants (idempotent per workspace and month, so hourly is safe),
    # usage pushed to Stripe, outcomes billed once their dispute window has passed.
    "grant-monthly-credits": {
        "task": "apps.billing.tasks.grant_monthly_credits",
        "schedule": 3600.0,
    },
    # Settled gateway calls → ledger debits (a durable queue; balances lag by this at most).
    "post-call-debits": {"task": "apps.billing.tasks.post_call_debits", "schedule": 2.0},
    "push-usage-to-stripe": {
        "task": "apps.billing.tasks.push_usage_to_stripe",
        "schedule": crontab(hour=2, minute=0),
    },
    # Long runs whose worker died (lease expired) go back on the queue.
    "requeue-stale-agent-runs": {"task": "apps.agents.tasks.requeue_stale_runs", "schedule": 5.0},
    # Approvals: pending actions past their expiry count as rejected; the agent is told.
    "expire-pending-actions": {"task": "apps.approvals.tasks.expire_actions", "schedule": 60.0},
    "finalise-outcomes": {"task": "apps.billing.tasks.finalise_outcomes", "schedule": 900.0},
    # Traces: raw content and masked copies deleted on their plan's schedule (legal hold wins).
    "apply-trace-retention": {
        "task": "apps.traces.tasks.apply_retention",
        "schedule": crontab(hour=3, minute=0),
    },
    # /v1/responses answers kept for previous_response_id, deleted when their retention ends.
    "expire-stored-responses": {
        "task": "apps.llm.tasks.expire_stored_responses",
        "schedule": crontab(hour=3, minute=30),
    },
}
CELERY_TIMEZONE = "UTC"

# --- auth (django-allauth; email is the login) ----------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_ADAPTER = "apps.workspaces.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "apps.workspaces.forms.SignupForm"}
ACCOUNT_LOGOUT_ON_GET = False
# allauth's per-address limits (failed logins, sign-ups) read the client's address; behind N
# reverse proxies that append to X-Forwarded-For, set this to N or every client is the proxy.
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("ALLAUTH_TRUSTED_PROXY_COUNT", default=0)
ACCOUNT_SESSION_REMEMBER = True
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="aisaas <noreply@localhost>")
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "apps.common.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "aisaas API",
    "DESCRIPTION": "OpenAI-compatible gateway and workspace APIs.",
    "VERSION": "0.1.0",
    # 3.1: JSON Schema 2020-12, which the /v1 request models are written in (pydantic).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc assets served from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The /v1 API is plain ASGI (apps/api): its paths come from its pydantic models.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.api.openapi.add_openai_api",
    ],
}

# --- static, i18n ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- logging: structured (structlog via django-structlog) -----------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="console")  # console | json
from aisaas.logging import configure_logging  # noqa: E402

LOGGING = configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)
DJANGO_STRUCTLOG_CELERY_ENABLED = True

# --- secrets at rest ------------------------------------------------------------------------
# Fernet keys, newest first (MultiFernet). Empty in development: derived from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# --- LLM gateway ----------------------------------------------------------------------------
LLM_ROUTING_FILE = env.str(
    "LLM_ROUTING_FILE", default=str(BASE_DIR / "apps" / "llm" / "llm-routing.yaml")
)
# Platform provider keys; a route whose provider has no key (here or BYOK) is skipped, and with
# none at all the offline local model answers.
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
LLM_OPENAI_COMPATIBLE_BASE_URL = env.str("LLM_OPENAI_COMPATIBLE_BASE_URL", default="")
LLM_OPENAI_COMPATIBLE_API_KEY = env.str("LLM_OPENAI_COMPATIBLE_API_KEY", default="")
# The offline model: streaming speed and the nominal price it is metered at.
LLM_LOCAL_TOKENS_PER_SECOND = env.float("LLM_LOCAL_TOKENS_PER_SECOND", default=60.0)
LLM_NOMINAL_INPUT_MICROS_PER_MTOK = env.int("LLM_NOMINAL_INPUT_MICROS_PER_MTOK", default=1_000_000)
LLM_NOMINAL_OUTPUT_MICROS_PER_MTOK = env.int(
    "LLM_NOMINAL_OUTPUT_MICROS_PER_MTOK", default=4_000_000
)
# Per-call timeouts by feature prefix (seconds); the longest matching prefix wins.
LLM_TIMEOUTS = {"chat": 60.0, "extract": 30.0, "agent": 300.0, "": 60.0}
LLM_MAX_INPUT_TOKENS = env.int("LLM_MAX_INPUT_TOKENS", default=100_000)
LLM_MAX_TOKENS_PER_CALL = env.int("LLM_MAX_TOKENS_PER_CALL", default=4096)
LLM_RESERVATION_TTL = env.int("LLM_RESERVATION_TTL", default=900)
# Requests per minute of a workspace API key that sets no limit of its own.
API_KEY_DEFAULT_RATE_LIMIT = env.int("API_KEY_DEFAULT_RATE_LIMIT", default=600)
# Chat: the alias of the default Assistant, the longest message, how much history is sent.
CHAT_DEFAULT_ALIAS = env.str("CHAT_DEFAULT_ALIAS", default="smart")
CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=20_000)
CHAT_HISTORY_MESSAGES = env.int("CHAT_HISTORY_MESSAGES", default=40)

# --- RAG: documents of a workspace --------------------------------------------------------------
RAG_MAX_FILE_BYTES = env.int("RAG_MAX_FILE_BYTES", default=20_000_000)
RAG_MAX_DOCUMENTS = env.int("RAG_MAX_DOCUMENTS", default=1_000)
# Chunk sizes in tokens; the offline embedding model reads at most 256 wordpieces.
RAG_CHUNK_TARGET_TOKENS = env.int("RAG_CHUNK_TARGET_TOKENS", default=200)
RAG_CHUNK_MAX_TOKENS = env.int("RAG_CHUNK_MAX_TOKENS", default=256)
RAG_CHUNK_OVERLAP_TOKENS = env.int("RAG_CHUNK_OVERLAP_TOKENS", default=30)
RAG_EMBED_BATCH = env.int("RAG_EMBED_BATCH", default=64)  # texts per embedding call
# Grounded chat (apps/rag/grounding.py): passages retrieved per question, and the least cosine
# similarity a passage needs to be given to the model (below it, "nothing relevant was found").
RAG_CHAT_PASSAGES = env.int("RAG_CHAT_PASSAGES", default=5)
RAG_CHAT_MIN_SIMILARITY = env.float("RAG_CHAT_MIN_SIMILARITY", default=0.3)

# --- Fetching URLs users or agents chose (apps/common/fetch.py: no private addresses) ----------
FETCH_MAX_BYTES = env.int("FETCH_MAX_BYTES", default=10_000_000)
FETCH_TIMEOUT = env.float("FETCH_TIMEOUT", default=10.0)
FETCH_MAX_REDIRECTS = env.int("FETCH_MAX_REDIRECTS", default=5)
# CIDRs fetched even though private (e.g. an intranet wiki); empty: public addresses only.
FETCH_ALLOWED_NETWORKS = env.list("FETCH_ALLOWED_NETWORKS", default=[])
# The largest request body the /v1 API reads (bytes); larger ones get a JSON 413.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# Limits per plan are data (billing.Plan); a workspace's AI settings may override them.

# --- billing --------------------------------------------------------------------------------
# The ledger counts micro-dollars; credits are what people see: 1 credit = CREDIT_MICROS µ$.
CREDIT_MICROS = env.int("CREDIT_MICROS", default=1_000)
# Calls on a workspace's own provider key (BYOK) debit no provider cost, only this fee per call.
BILLING_BYOK_FEE_MICROS = env.int("BILLING_BYOK_FEE_MICROS", default=0)
# The chat warns that credit is running low below this share of the plan's monthly credit.
BILLING_LOW_CREDIT_PERCENT = env.int("BILLING_LOW_CREDIT_PERCENT", default=10)
# Top-ups through Checkout, in whole dollars.
BILLING_TOPUP_MIN_USD = env.int("BILLING_TOPUP_MIN_USD", default=5)
BILLING_TOPUP_MAX_USD = env.int("BILLING_TOPUP_MAX_USD", default=1_000)
OUTCOME_DISPUTE_WINDOW_DAYS = env.int("OUTCOME_DISPUTE_WINDOW_DAYS", default=7)
# Stripe: with no secret key, development uses the loopback Stripe fake (`make run` starts it;
# tests start their own). Empty key: Checkout and the usage push say Stripe is not configured.
_stripe_fake = stripe_fake()
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="") or (
    _stripe_fake.api_key if _stripe_fake else ""
)
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="") or (
    _stripe_fake.webhook_secret if _stripe_fake else ""
)
# "" → Stripe's own
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="") or (
    _stripe_fake.url if _stripe_fake else ""
)
STRIPE_METER_EVENT_NAME = env.str("STRIPE_METER_EVENT_NAME", default="aisaas_credits")
STRIPE_WEBHOOK_TOLERANCE = 300  # seconds

# --- traces: support, dashboards, export ----------------------------------------------------
# Replays made from admin run in this system workspace (feature admin.replay), on its budget.
PLATFORM_WORKSPACE = env.str("PLATFORM_WORKSPACE", default="platform")
# The longest text shown inline on a trace page; longer bodies are cut with a download link.
TRACE_DISPLAY_MAX_CHARS = env.int("TRACE_DISPLAY_MAX_CHARS", default=20_000)
# Text search in the trace admin scans masked content (no trigram index): within the chosen
# date range, else within this many most recent days.
TRACE_TEXT_SEARCH_DAYS = env.int("TRACE_TEXT_SEARCH_DAYS", default=7)
# Export traces as OpenTelemetry spans (OTLP over HTTP, e.g. Langfuse's OTel endpoint).
OTEL_EXPORT_ENDPOINT = env.str("OTEL_EXPORT_ENDPOINT", default="")
OTEL_EXPORT_HEADERS = env.str("OTEL_EXPORT_HEADERS", default="")  # "k=v,k2=v2"
# What masks PII in traces, eval candidates, the dead-letter list and log lines: dotted paths to
# detector classes (apps.traces.masking.Detector); add a model-based one beside the rules.
TRACE_PII_DETECTORS = env.list("TRACE_PII_DETECTORS", default=["apps.traces.masking.RuleDetector"])

# --- prompts and evals ----------------------------------------------------------------------
PROMPTS_DIR = env.str("PROMPTS_DIR", default=str(BASE_DIR / "prompts"))
# Active prompt versions per environment, over prompts/config.yaml: "chat.system=v2,other=v1".
# A malformed value stops start-up: a silently ignored override would serve the wrong prompt.
from apps.llm.prompts import parse_overrides  # noqa: E402

PROMPT_VERSIONS = parse_overrides(env.str("PROMPT_VERSIONS", default=""))
EVALS_BASELINE_DIR = env.str("EVALS_BASELINE_DIR", default=str(BASE_DIR / "evals" / "baselines"))
# The workspace eval calls are made (and metered) in; created on first use as a system workspace.
EVALS_WORKSPACE = env.str("EVALS_WORKSPACE", default="evals")
# The share of gateway calls stored as eval candidates (masked) when call records are flushed.
EVALS_SAMPLE_RATE = env.float("EVALS_SAMPLE_RATE", default=0.01)

# --- agent identity tokens (apps/agents/identity.py) ----------------------------------------
# Each agent run calls our own HTTP surfaces (MCP, internal API) with a short-lived HS256 token.
# Its key is always derived under its own label, from AGENT_TOKEN_SECRET or, when that is empty,
# from SECRET_KEY: never SECRET_KEY itself. Changing it refuses every token in flight (≤ 15 min).
AGENT_TOKEN_SECRET = env.str("AGENT_TOKEN_SECRET", default="")
AGENT_TOKEN_AUDIENCE = env.str("AGENT_TOKEN_AUDIENCE", default="aisaas-agent")
# Seconds a token lives; capped at 900 whatever is set here or asked by the caller.
AGENT_TOKEN_TTL = env.int("AGENT_TOKEN_TTL", default=600)
