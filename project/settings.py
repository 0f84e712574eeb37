"""Settings, read from the environment (django-environ).

Every setting is documented in README.md and .env.example. Development defaults need no
setup (SQLite, a local Redis); production (DJANGO_ENV=production) refuses to start with
DEBUG on or with a secret missing or left at its development default.
"""

from __future__ import annotations

import logging
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from project.fernet_keys import derived_key, parse_keys

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file beside manage.py is optional; real environment variables win over it.
# (Read only if present: django-environ logs a missing file, before logging is set up.)
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"


def env_bool(name: str, default: bool) -> bool:
    """A strict boolean: a typo such as DJANGO_DEBUG=flase is an error, not False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/K8s secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured("DJANGO_ENV must be development, production or test")
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Encrypts secrets stored in the database (project.encryption): comma-separated Fernet
# keys, the first encrypts, all decrypt. Development and tests derive one from SECRET_KEY.
try:
    FIELD_ENCRYPTION_KEYS = parse_keys(env_secret("FIELD_ENCRYPTION_KEYS", default=""))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
if not FIELD_ENCRYPTION_KEYS and not PRODUCTION:
    FIELD_ENCRYPTION_KEYS = [derived_key(SECRET_KEY)]

# --- Providers -------------------------------------------------------------------------
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="AC" + "0" * 32)
TWILIO_AUTH_TOKEN = env_secret("TWILIO_AUTH_TOKEN", default="dev-twilio-auth-token")
# Points the real twilio client at another base URL (a local fake, a proxy).
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="")
TWILIO_READ_TIMEOUT = env.float("TWILIO_READ_TIMEOUT", default=10.0)
# Twilio's limit for one WhatsApp message body.
TWILIO_MAX_BODY = env.int("TWILIO_MAX_BODY", default=1600)
# Resolving an unknown outcome compares Twilio's date_created with our attempt's start:
# this margin makes a few minutes of clock skew between us and Twilio harmless.
TWILIO_LOOKUP_SKEW_SECONDS = env.int("TWILIO_LOOKUP_SKEW_SECONDS", default=600)
# At most this many of the newest messages to one customer are read to find a lost send;
# when there are more and none matches, the outcome stays unknown (never "not sent").
TWILIO_LOOKUP_SCAN = env.int("TWILIO_LOOKUP_SCAN", default=200)

# The public https base URL that Twilio calls (and signs). Empty: use the request's own
# URL, which honours X-Forwarded-Proto/Host only when TRUST_PROXY_HEADERS is on.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")
TRUST_PROXY_HEADERS = env_bool("TRUST_PROXY_HEADERS", default=False)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# Webhook bodies larger than this are refused with 413 before parsing.
WEBHOOK_MAX_BYTES = env.int("WEBHOOK_MAX_BYTES", default=64 * 1024)
# Twilio's webhooks read their tenant from a per-process cache this long (a save in the
# same process drops it at once; whatsapp.inbound.tenants). 0: read the row every time.
WEBHOOK_TENANT_CACHE_SECONDS = env.float("WEBHOOK_TENANT_CACHE_SECONDS", default=5.0)
# The Twilio webhook's one statement runs as a server-side prepared statement (planned
# once per connection; whatsapp.inbound.one_statement). False behind a transaction-mode
# pooler that cannot keep prepared statements (PgBouncer before 1.21).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", default=True)
# WhatsApp allows a text of 65,536 characters; the sidecar's JSON of one can take up to
# 6 bytes a character (a control character escaped as \uXXXX), so its webhook has its own,
# larger limit. Twilio's stays at WEBHOOK_MAX_BYTES (its bodies are at most 1,600 characters).
WHATSAPP_MAX_TEXT = 65_536
SIDECAR_WEBHOOK_MAX_BYTES = env.int("SIDECAR_WEBHOOK_MAX_BYTES", default=512 * 1024)
# The Baileys sidecar signs inbound webhooks with this secret (HMAC-SHA256).
SIDECAR_WEBHOOK_SECRET = env_secret("SIDECAR_WEBHOOK_SECRET", default="dev-sidecar-webhook-secret")
SIDECAR_WEBHOOK_MAX_AGE = env.int("SIDECAR_WEBHOOK_MAX_AGE", default=300)
SIDECAR_URL = env.str("SIDECAR_URL", default="http://127.0.0.1:3001").rstrip("/")
SIDECAR_TOKEN = env_secret("SIDECAR_TOKEN", default="dev-sidecar-token")
# sandbox: a simulated WhatsApp for development and tests; baileys: the real one.
SIDECAR_TRANSPORT = env.str("SIDECAR_TRANSPORT", default="baileys" if PRODUCTION else "sandbox")
# The one relaxation a production-mode test may use (tests/integration/test_production_run.py): the
# sandbox sidecar under production settings. Never set it in a deploy.
SIDECAR_SANDBOX_IN_PRODUCTION_FOR_TESTS = env_bool("SIDECAR_SANDBOX_IN_PRODUCTION_FOR_TESTS", default=False)
SIDECAR_CONNECT_TIMEOUT = env.float("SIDECAR_CONNECT_TIMEOUT", default=1.0)
SIDECAR_READ_TIMEOUT = env.float("SIDECAR_READ_TIMEOUT", default=8.0)
# The canSend check before each send: a sidecar that cannot answer this fast is skipped.
SIDECAR_STATUS_TIMEOUT = env.float("SIDECAR_STATUS_TIMEOUT", default=1.5)
# The lifecycle worker (queue `baileys`) runs the sidecar process with these.
SIDECAR_WEBHOOK_BASE = env.str("SIDECAR_WEBHOOK_BASE", default="http://127.0.0.1:8000").rstrip("/")
SIDECAR_DATA_DIR = env.str("SIDECAR_DATA_DIR", default=str(BASE_DIR / ".run" / "sidecar"))
SIDECAR_NODE = env.str("SIDECAR_NODE", default="node")
# A session start answers when connected, a QR is shown or the start gave up (the sidecar's
# SIDECAR_START_TIMEOUT_MS, 60 s by default); the HTTP call waits a little longer.
SIDECAR_START_TIMEOUT = env.float("SIDECAR_START_TIMEOUT", default=70.0)
SESSION_HEALTH_INTERVAL_SECONDS = env.float("SESSION_HEALTH_INTERVAL_SECONDS", default=10.0)
# The lifecycle worker's shard lease (a row of whatsapp_shard, timed by the database's clock,
# whatsapp.sessions.shard_lease): renewed every sixth of it; a worker that cannot renew it
# stops its sidecar within the other half.
LIFECYCLE_LEASE_TTL_SECONDS = env.float("LIFECYCLE_LEASE_TTL_SECONDS", default=30.0)
# Shards (docs/SCALING.md): tenants without a shard belong to this one, whose lifecycle
# queue keeps the name `baileys`; shard s has queue `baileys.s`.
SESSION_DEFAULT_SHARD = env.str("SESSION_DEFAULT_SHARD", default="default")
# Where the sidecar keeps session state: "file" (SIDECAR_DATA_DIR, one host) or "postgres"
# (SIDECAR_STATE_DATABASE_URL, any host can take a shard over).
SIDECAR_STATE_STORE = env.str("SIDECAR_STATE_STORE", default="file")
SIDECAR_STATE_DATABASE_URL = env.str("SIDECAR_STATE_DATABASE_URL", default="")
# Pause between two session starts when an owner (re)starts its shard's sessions, so
# WhatsApp does not see a burst of logins from one address.
SESSION_START_STAGGER_SECONDS = env.float("SESSION_START_STAGGER_SECONDS", default=0.2)
# How many session starts an owner runs at once (a real start takes seconds: a new owner
# of 100 sessions must have them back within a minute).
SESSION_START_PARALLELISM = env.int("SESSION_START_PARALLELISM", default=10)
# Reconnects after transient closes (408, 428, 503, 515) without 30 s of stable connection;
# then the session stops and staff are alerted (whatsapp.sessions.policy).
SESSION_RECONNECT_BUDGET = env.int("SESSION_RECONNECT_BUDGET", default=10)
# Pacing of sends through one WhatsApp session (Tenant.baileys_sends_per_minute): a send
# waits up to BAILEYS_PACING_MAX_WAIT seconds for its slot, else it is retried at its slot.
BAILEYS_PACING_BURST = env.int("BAILEYS_PACING_BURST", default=1)
BAILEYS_PACING_MAX_WAIT = env.float("BAILEYS_PACING_MAX_WAIT", default=5.0)

# --- Bots ------------------------------------------------------------------------------
BOT_ENGINE = env.str("BOT_ENGINE", default="rules")
LLM_BASE_URL = env.str("LLM_BASE_URL", default="https://api.openai.com/v1").rstrip("/")
LLM_API_KEY = env_secret("LLM_API_KEY", default="")
LLM_MODEL = env.str("LLM_MODEL", default="gpt-4o-mini")
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.3)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=300)
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=15.0)
LLM_DEADLINE = env.float("LLM_DEADLINE", default=40.0)
# A tenant's own LLM URL may not reach loopback, link-local, private or other internal
# addresses, except these hosts (names, IPs or networks: "ollama.lan,10.0.0.5,10.1.0.0/24").
LLM_ALLOWED_INTERNAL_HOSTS = env.list("LLM_ALLOWED_INTERNAL_HOSTS", default=[])
# A tenant's own LLM URL must be https (hosts in LLM_ALLOWED_INTERNAL_HOSTS excepted).
LLM_TENANT_REQUIRE_HTTPS = env_bool("LLM_TENANT_REQUIRE_HTTPS", default=PRODUCTION)
BOT_MEMORY_MESSAGES = env.int("BOT_MEMORY_MESSAGES", default=12)
BOT_MEMORY_CHARS = env.int("BOT_MEMORY_CHARS", default=4000)
# Quiet time after a message before answering, so a burst gets one answer. Short, because
# it adds to every reply time.
BOT_DEBOUNCE_SECONDS = env.float("BOT_DEBOUNCE_SECONDS", default=1.5)

# --- Delivery policy -------------------------------------------------------------------
SEND_RETRY_MAX = env.int("SEND_RETRY_MAX", default=5)
SEND_RETRY_BACKOFF_BASE = env.int("SEND_RETRY_BACKOFF_BASE", default=2)
SEND_RETRY_BACKOFF_CAP = env.int("SEND_RETRY_BACKOFF_CAP", default=300)
SEND_DEADLINE_SECONDS = env.int("SEND_DEADLINE_SECONDS", default=1800)
# A claimed ("sending") message whose worker vanished is re-driven after this lease.
SEND_LEASE_SECONDS = env.int("SEND_LEASE_SECONDS", default=180)
# How long an unknown outcome (the request may have left) is asked about before a person
# has to decide: such a message is dead-lettered rather than risk a second copy.
SEND_AMBIGUOUS_RESOLVE_SECONDS = env.int("SEND_AMBIGUOUS_RESOLVE_SECONDS", default=120)
RECONCILE_INTERVAL_SECONDS = env.float("RECONCILE_INTERVAL_SECONDS", default=15.0)
# A queued message (or an unanswered inbound one) untouched this long has lost its task.
RECONCILE_GRACE_SECONDS = env.float("RECONCILE_GRACE_SECONDS", default=30.0)
# An inbound message still unanswered this long after it arrived becomes a dead letter
# that staff see (the reconciler re-drives it until then). Far above the debounce (at
# most 60 s, bots.dispatch) and a slow LLM answer.
INBOUND_ANSWER_DEADLINE_SECONDS = env.float("INBOUND_ANSWER_DEADLINE_SECONDS", default=3600.0)
# How often the lifecycle worker collects the inbound messages Django refused (4xx) that
# the sidecar kept, and files them as dead letters.
REJECTED_INBOUND_INTERVAL_SECONDS = env.float("REJECTED_INBOUND_INTERVAL_SECONDS", default=60.0)
BREAKER_FAIL_MAX = env.int("BREAKER_FAIL_MAX", default=3)
BREAKER_RESET_TIMEOUT = env.int("BREAKER_RESET_TIMEOUT", default=30)

# --- Privacy ---------------------------------------------------------------------------
# Messages, attempts and resolved dead letters older than this many days are deleted
# (Tenant.retention_days overrides it per tenant); docs/SECURITY.md.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=90)
if RETENTION_DAYS < 1:
    raise ImproperlyConfigured("RETENTION_DAYS must be at least 1")
RETENTION_INTERVAL_SECONDS = env.float("RETENTION_INTERVAL_SECONDS", default=3600.0)
# How often paused conversations are checked for the tenant's idle time (whatsapp.inbox).
INBOX_RESUME_INTERVAL_SECONDS = env.float("INBOX_RESUME_INTERVAL_SECONDS", default=60.0)
# One run deletes in batches of this many messages, each its own short transaction, and
# stops after RETENTION_MAX_SECONDS; the next run goes on where it stopped.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=500)
RETENTION_MAX_SECONDS = env.float("RETENTION_MAX_SECONDS", default=30.0)

# --- Redis and Celery ------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Unacked tasks come back after this; every retry countdown stays well below it.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
# Bounds on every broker connect and socket read (kombu's Redis transport; redis-py waits
# forever by default): a blackholed Redis holds a webhook's publish about 2x these at
# most. Keep the socket timeout above kombu's BRPOP timeout (1 s).
CELERY_BROKER_CONNECT_TIMEOUT = env.float("CELERY_BROKER_CONNECT_TIMEOUT", default=2.0)
CELERY_BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=2.0)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Ops -------------------------------------------------------------------------------
FLOWER_BASIC_AUTH = env_secret("FLOWER_BASIC_AUTH", default="")
# Bearer token for /metrics and for /readyz's details.
METRICS_TOKEN = env_secret("METRICS_TOKEN", default="")
# In production /metrics needs the token: "only from loopback" is no protection behind a
# proxy on the same host that does not add X-Forwarded-For (every client looks local).
METRICS_REQUIRE_TOKEN = PRODUCTION
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "text")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")

# Media of inbound messages (docs/MEDIA.md). Files go through Django's storage API:
# the file system under MEDIA_ROOT by default, any storage backend (django-storages: S3,
# GCS, Azure) by MEDIA_STORAGE_BACKEND and its options as JSON. Never served publicly:
# staff open them through the admin.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / ".run" / "media"))
MEDIA_STORAGE_BACKEND = env.str("MEDIA_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")
MEDIA_STORAGE_OPTIONS = env.json("MEDIA_STORAGE_OPTIONS", default={})
MEDIA_MAX_BYTES = env.int("MEDIA_MAX_BYTES", default=16 * 1024 * 1024)
# Seconds for one whole download (connect, redirect and body together).
MEDIA_FETCH_TIMEOUT = env.float("MEDIA_FETCH_TIMEOUT", default=30.0)
# Transient failures (network, 5xx, an expired storage URL) are retried this many times.
MEDIA_FETCH_RETRIES = env.int("MEDIA_FETCH_RETRIES", default=3)
MEDIA_RETRY_BACKOFF = env.float("MEDIA_RETRY_BACKOFF", default=5.0)
MEDIA_ALLOWED_TYPES = env.list("MEDIA_ALLOWED_TYPES", default=[
    "image/jpeg", "image/png", "image/webp", "audio/ogg", "audio/mpeg", "audio/mp4", "audio/amr", "audio/aac",
    "video/mp4", "video/3gpp", "application/pdf", "text/plain", "text/vcard",
])
# Staff media (a photo or document sent from the inbox, docs/MEDIA.md). 5 MB is Twilio's
# limit for a WhatsApp image (16 MB for a whole message).
STAFF_MEDIA_MAX_BYTES = env.int("STAFF_MEDIA_MAX_BYTES", default=5 * 1024 * 1024)
STAFF_MEDIA_TYPES = env.list("STAFF_MEDIA_TYPES", default=["image/jpeg", "image/png", "application/pdf"])
# Twilio fetches a staff file from a signed URL under PUBLIC_BASE_URL; it expires after this.
MEDIA_URL_MAX_AGE = env.int("MEDIA_URL_MAX_AGE", default=3600)
# Presence through the session (Tenant.session_presence): "typing..." lasts
# PRESENCE_TYPING_BASE + characters / PRESENCE_TYPING_CHARS_PER_SECOND seconds, at most
# PRESENCE_TYPING_MAX (and never longer than one pacing interval).
PRESENCE_TYPING_BASE = env.float("PRESENCE_TYPING_BASE", default=0.5)
PRESENCE_TYPING_CHARS_PER_SECOND = env.float("PRESENCE_TYPING_CHARS_PER_SECOND", default=30.0)
PRESENCE_TYPING_MAX = env.float("PRESENCE_TYPING_MAX", default=4.0)
# Speech to text: an OpenAI-compatible POST {base}/audio/transcriptions (OpenAI, a
# self-hosted Whisper server). LLM_API_KEY is sent only when this is LLM_BASE_URL.
TRANSCRIPTION_BASE_URL = env.str("TRANSCRIPTION_BASE_URL", default=LLM_BASE_URL).rstrip("/")
TRANSCRIPTION_API_KEY = env_secret("TRANSCRIPTION_API_KEY", default="")
TRANSCRIPTION_MODEL = env.str("TRANSCRIPTION_MODEL", default="whisper-1")
TRANSCRIPTION_TIMEOUT = env.float("TRANSCRIPTION_TIMEOUT", default=60.0)

# --- Django ----------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "whatsapp",
    "bots",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from gunicorn, no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a test run's Celery worker process shares the test DB;
    # a busy timeout because web and workers write concurrently.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DB_PREPARED_STATEMENTS:
        # psycopg prepares nothing while this is None (Django's default). Django's own
        # cursors bind on the client and never prepare; this lets the Twilio webhook's
        # server-binding cursor prepare its one statement (whatsapp.inbound.one_statement).
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Outside production the admin's files are served straight from the apps, collected or not.
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE_BACKEND, "OPTIONS": MEDIA_STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = max(WEBHOOK_MAX_BYTES * 4, SIDECAR_WEBHOOK_MAX_BYTES)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "project.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "project.logging.JsonFormatter"},
        "text": {"()": "project.logging.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # twilio's client logs full request URLs and bodies (phone numbers) at INFO.
        "twilio": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}
if LOG_FORMAT == "json":
    # Python warnings (a library's deprecation, Celery's "running as root") become log
    # records too, so a production log is JSON lines only.
    logging.captureWarnings(True)

if PRODUCTION:
    problems = []
    if DEBUG:
        problems.append("DJANGO_DEBUG must be false in production")
    for name, value, default in [
        ("DJANGO_SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY),
        ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN, "dev-twilio-auth-token"),
        ("SIDECAR_WEBHOOK_SECRET", SIDECAR_WEBHOOK_SECRET, "dev-sidecar-webhook-secret"),
        ("SIDECAR_TOKEN", SIDECAR_TOKEN, "dev-sidecar-token"),
    ]:
        if not value or value == default:
            problems.append(f"{name} must be set to a real secret in production")
    if not FIELD_ENCRYPTION_KEYS:
        problems.append("FIELD_ENCRYPTION_KEYS must be set in production (tenant secrets are encrypted with it)")
    if SIDECAR_TRANSPORT != "baileys" and not SIDECAR_SANDBOX_IN_PRODUCTION_FOR_TESTS:
        # The sandbox "sends" to a simulator: customers would never get those replies.
        problems.append("SIDECAR_TRANSPORT must be baileys in production")
    if len(SECRET_KEY) < 32:
        problems.append("DJANGO_SECRET_KEY must be at least 32 characters")
    if not ALLOWED_HOSTS:
        problems.append("DJANGO_ALLOWED_HOSTS must list the public host names")
    if "*" in ALLOWED_HOSTS:
        problems.append("DJANGO_ALLOWED_HOSTS must not be * in production (list the public host names)")
    if problems:
        raise ImproperlyConfigured("; ".join(problems))
    # HTTPS only (`manage.py check --deploy` is clean with these). Behind a TLS-terminating
    # proxy, TRUST_PROXY_HEADERS lets Django see https in X-Forwarded-Proto, so the redirect
    # is right there too; a proxy that cannot send it redirects itself: DJANGO_SSL_REDIRECT=false.
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", default=True)
    # Browsers then refuse plain http to this host (and its subdomains) for a year. The
    # preload flag alone enrols nothing: that is a manual submission at hstspreload.org.
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # No script reads either cookie (the admin posts the token from its forms).
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = True

# Called over plain http from this host or the internal network, never redirected to https:
# the load balancer's probes, Prometheus, and the sidecar's signed webhooks (SIDECAR_WEBHOOK_BASE).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^webhooks/baileys/"]
