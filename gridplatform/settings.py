"""The one settings module. Production differs from development only by its environment.

Environment variables (a table of them is in the README):
DEBUG, SECRET_KEY, KEY_ENCRYPTION_KEY, RETIRED_KEY_ENCRYPTION_KEYS, ALLOWED_HOSTS,
CSRF_TRUSTED_ORIGINS, DATABASE_URL, REDIS_URL, LEDGER_DIR, LEDGER_STORE_URL, LEDGER_VALIDATORS,
LEDGER_CHAIN_ID, LEDGER_POOL_LIMIT, LEDGER_PENDING_TIMEOUT_S, LEDGER_CATCH_UP_AFTER_S,
LEDGER_AUDIT_EVERY_S,
SECURE_SSL_REDIRECT,
SECURE_PROXY_SSL_HEADER, LOGIN_FAILURE_LIMIT, TIME_ZONE, API_THROTTLE_USER, API_THROTTLE_ANON,
API_THROTTLE_METER.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from gridplatform import embedded_redis

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# What a running system writes beside the code: the SQLite database, the ledger, logs, sockets.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)


def _secret(name: str, dev_default: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set in the environment when DEBUG is off")


# Development defaults only; with DEBUG off both must come from the environment.
SECRET_KEY = _secret("SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production")
KEY_ENCRYPTION_KEY = _secret("KEY_ENCRYPTION_KEY", "ZGV2LW9ubHkta2V5LWVuY3J5cHRpb24ta2V5LTMyYiE=")
# Keys retired by `manage.py rotate_key_encryption_key`: they still open, never seal.
RETIRED_KEY_ENCRYPTION_KEYS = env.list("RETIRED_KEY_ENCRYPTION_KEYS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "gridplatform",
    "gridplatform.accounts",
    "ledger",
    "market",
    "meters",
    "supervision",
    "flexibility",
    "retail",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # ETags, and 304 for a GET whose page has not changed: above everything that changes bodies.
    "django.middleware.http.ConditionalGetMiddleware",
    # Live regions' partials are revalidated, not re-sent, when a block did not change them.
    "gridplatform.middleware.LivePartialRevalidationMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times in the user's own zone (User.time_zone).
    "gridplatform.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # A database that cannot answer now: 503 with Retry-After (nothing changed), not 500.
    "gridplatform.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "gridplatform.urls"
ASGI_APPLICATION = "gridplatform.asgi.application"

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
                "gridplatform.context_processors.time_zone",
            ],
        },
    },
]

# --- databases -------------------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'site.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # A file, not memory, so that servers and workers started by tests see the test database.
    # Named per process, so that two test runs on one checkout do not share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-site-{os.getpid()}.sqlite3")}
    # The embedded default under a burst (a hundred buyers at once on a busy laptop): WAL, so
    # that reads never wait for a write nor a write for reads; every transaction takes the write
    # lock when it begins (IMMEDIATE), so none fails halfway for want of it; and a writer waits
    # up to 60 s for its turn instead of answering 503 after 20 s.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env.bool("DATABASE_POOL", default=False):
    # PostgreSQL through a pool of open connections in the process (psycopg_pool): otherwise
    # every request opens a connection, which forks a server process and cost a one-reading
    # meter request more than storing the reading (docs/benchmarks.md). The web server turns
    # it on (gridplatform/asgi.py); it runs Django's sync code in one thread, so a small pool
    # suffices. Workers and commands connect per task (CONN_MAX_AGE below).
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": env.int("DATABASE_POOL_MIN", default=1),
            "max_size": env.int("DATABASE_POOL_MAX", default=4),
            "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
        }
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The ledger: the genesis document and one key file per validator live in LEDGER_DIR; each
# validator keeps its own store, `{node}` in LEDGER_STORE_URL being replaced by its index.
LEDGER_DIR = Path(env.str("LEDGER_DIR", default=str(VAR_DIR / "ledger")))
LEDGER_STORE_URL = env.str(
    "LEDGER_STORE_URL", default=f"sqlite:///{LEDGER_DIR}/store-{{node}}.sqlite3"
)
LEDGER_VALIDATORS = env.int("LEDGER_VALIDATORS", default=4)
LEDGER_CHAIN_ID = env.str("LEDGER_CHAIN_ID", default="gridplatform-dev")
# The site's admission pool: transactions admitted by the site and not yet seen in a block. At
# this many the site refuses more (`pool_full`), as a validator does with its own pool.
LEDGER_POOL_LIMIT = env.int("LEDGER_POOL_LIMIT", default=20_000)
# A sender's pending transactions older than this are given up (their nonces freed), so that a
# transaction the validators lost cannot block its sender for ever (docs/ledger.md).
LEDGER_PENDING_TIMEOUT_S = env.int("LEDGER_PENDING_TIMEOUT_S", default=300)
# The grid operator's top-ups (credit.issue through the site), in minor units: at most this much
# at once, and at most this much to one household in any 24 hours (ledger.services).
TOP_UP_LIMIT_MINOR = env.int("TOP_UP_LIMIT_MINOR", default=100_000)
TOP_UP_DAILY_LIMIT_MINOR = env.int("TOP_UP_DAILY_LIMIT_MINOR", default=200_000)
# A pending transaction no block brought after this long is sent to the validators again.
LEDGER_PENDING_RESEND_S = env.int("LEDGER_PENDING_RESEND_S", default=10)
# The applications the validators execute, each a Django-free `chain` package with a
# register(registry) (ledger.registry). Order matters: each may use the hooks and state of those
# before it (docs/architecture.md). Every validator, `ledger verify` and the site's admission
# checks build their rules from this one list; changing it changes the protocol.
LEDGER_APPLICATIONS: list[str] = ["meters.chain", "market.chain", "supervision.chain"]
# Applications' read models, projected from every committed block (ledger.projection.ReadModel).
# Order matters: supervision's projection reads the contracts the market's has just written, and
# the flexibility and retail ones the market's contracts and orders.
LEDGER_READ_MODELS: list[str] = [
    "market.projection",
    "supervision.projection",
    "flexibility.projection",
    "retail.projection",
]
# What each application's events and state keys name for the live pages: modules with
# topics(*, block, state, changes) -> set of "account.<address>" and "slot.<ms>" (ledger.live).
LEDGER_LIVE_TOPICS: list[str] = ["meters.live", "market.live", "supervision.live"]
# Each application's audit of its own read models against the committed state, in the same order:
# modules with audit(*, height, state) -> list[ledger.read_model_audit.Difference] (this first
# one is the ledger's own). `manage.py audit_read_models` and the beat task below run them.
LEDGER_READ_MODEL_AUDITS: list[str] = [
    "ledger.read_model_audit",
    "market.audit",
    "supervision.audit",
]
# What would refuse a household's orders now (a suspension, a restriction, the grid's state), for
# the market's pages and refusal messages: a callable (*, address) -> stop | None, whose result
# has code, reason and until (market.selectors.TradingStop). Supervision provides it; the market,
# below supervision, reads this name at each call instead of importing it.
MARKET_TRADING_STOP = "supervision.selectors.trading_stop"
# Personal data on the public ledger (docs/ledger.md, "Privacy of meter readings"): a callable
# (user, *, meter_id) -> bool saying who may see a meter's readings; its module names what is
# private (PRIVATE_TX_TYPES, PRIVATE_STATE_PREFIXES). The ledger's public reads withhold it from
# everyone else. The meters provide it: the ledger may not import them.
LEDGER_PRIVATE_DATA = "meters.selectors.may_see_reading_data"
# The feeder the grid operator assigned to a household on the ledger (a callable (*, user) ->
# str, "" when none yet), which the meter form offers: supervision owns the grid and provides
# it; the meters, below it, read this name at each call.
METERS_FEEDER_OF = "supervision.selectors.feeder_of"
# Review rules of supervision (supervision.review): a new contract goes to the regulators' review
# queue when it is larger than max_energy_wh, its price is more than price_deviation_bps from the
# slot's median, a party has defaults, or a feeder it uses is loaded to feeder_load_bps of its
# capacity. seller_share_bps: a seller above this share of a slot's volume raises an alert.
SUPERVISION_REVIEW: dict[str, int] = {
    "max_energy_wh": 5_000,
    "price_deviation_bps": 3_000,
    "feeder_load_bps": 8_000,
    "seller_share_bps": 5_000,
}
# The read models ask a validator for missed blocks when stalled this long (ledger.services).
LEDGER_CATCH_UP_AFTER_S = env.int("LEDGER_CATCH_UP_AFTER_S", default=10)
# How often the beat task ledger.read_models_audit compares every read model with the chain
# (docs/ledger.md, "Auditing the read models"); differences raise an alert on the operator console.
LEDGER_AUDIT_EVERY_S = env.int("LEDGER_AUDIT_EVERY_S", default=300)
# Test-only: lets a validator be started lying (ledger.consensus.Fault), never in production.
LEDGER_ALLOW_FAULTS = DEBUG and env.bool("LEDGER_ALLOW_FAULTS", default=False)

# --- Redis: Celery broker, Channels layer, cache ----------------------------------------------

REDIS_URL = embedded_redis.resolve(VAR_DIR, env.str("REDIS_URL", default=""))

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels_redis waits for messages with BZPOPMIN blocking 5 s; redis-py's default read
            # timeout is 5 s too, so every idle socket's wait ended in a TimeoutError and the
            # socket closed 1011. Reads may take longer than the block.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": "gridplatform:channels:",
        },
    }
}
CACHES = {
    "default": {
        "BACKEND": "gridplatform.cache.SharedPoolRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "gridplatform",
    }
}

CELERY_BROKER_URL = embedded_redis.celery_url(REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
# A task is acknowledged after it ran, and given back if its worker dies: tasks are idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "sessions-clear-expired": {
        "task": "gridplatform.accounts.tasks.sessions_clear_expired",
        "schedule": timedelta(hours=1),
    },
    "registrations-forget": {
        "task": "gridplatform.accounts.tasks.registrations_forget",
        "schedule": timedelta(hours=1),
    },
    "market-slots-clear": {
        "task": "market.slots_clear",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 30},
    },
    # What is left of a requirement expires only with its slot's clearing (flexibility.tasks).
    "flexibility-requirements-clear": {
        "task": "flexibility.requirements_clear",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 30},
    },
    "market-slots-settle": {
        "task": "market.slots_settle",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 60},
    },
    "meters-relay-pending": {
        "task": "meters.relay_pending",
        "schedule": timedelta(minutes=2),
        "options": {"expires": 120},
    },
    "ledger-projection-catch-up": {
        "task": "ledger.projection_catch_up",
        "schedule": timedelta(seconds=10),
        "options": {"expires": 10},
    },
    "ledger-pending-heal": {
        "task": "ledger.pending_heal",
        "schedule": timedelta(seconds=LEDGER_PENDING_RESEND_S),
        "options": {"expires": LEDGER_PENDING_RESEND_S},
    },
    "ledger-read-models-audit": {
        "task": "ledger.read_models_audit",
        "schedule": timedelta(seconds=LEDGER_AUDIT_EVERY_S),
        "options": {"expires": LEDGER_AUDIT_EVERY_S},
    },
}

# --- accounts and security -------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    # Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), at most
    # PASSWORD_HASHING_CONCURRENCY hashes at once per process (gridplatform.accounts.hashers).
    # Its hashes are "argon2" hashes: those made with Django's defaults verify with it too.
    "gridplatform.accounts.hashers.BoundedArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHING_CONCURRENCY = env.int("PASSWORD_HASHING_CONCURRENCY", default=2)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login lockout: after this many failures for one email from one address, a cool-off.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Django's login form passes the email as `username`; without this axes would look under
# `email` (the USERNAME_FIELD), find nothing and lock by address alone.
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# No inline script or style anywhere: every script and stylesheet is a file under static/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- REST API: DRF, errors as JSON with a stable code, schema and docs by drf-spectacular -----

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gridplatform.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: the browsable API renders inline scripts, which the CSP forbids; /api/docs/
    # is the interactive documentation.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gridplatform.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "gridplatform.api.Pagination",
    "DEFAULT_THROTTLE_CLASSES": [
        # DRF's own, on atomic counters (gridplatform.throttling).
        "gridplatform.throttling.UserRate",
        "gridplatform.throttling.AnonRate",
    ],
    # Anonymous callers are told apart by REMOTE_ADDR alone. DRF would otherwise key them by the
    # whole X-Forwarded-For header, which a client writes itself: a new value, a fresh budget.
    # Behind a reverse proxy the web server sets REMOTE_ADDR from the proxy's header
    # (gridplatform.processes, --proxy-headers). The explorer pages share this budget.
    "NUM_PROXIES": 0,
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
        "anon": env.str("API_THROTTLE_ANON", default="120/min"),
        # Batches of readings per meter (meters.api.MeterRateThrottle): a meter sends one per
        # interval, and catches up after an outage in batches of up to 2,000 readings.
        "meter": env.str("API_THROTTLE_METER", default="60/min"),
        # POSTs of the login, registration and password forms per client address
        # (gridplatform.throttling.address_rate_limited): each costs an Argon2 hash.
        "address": env.str("FORM_THROTTLE_ADDRESS", default="30/min"),
    },
    "EXCEPTION_HANDLER": "gridplatform.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Grid platform API",
    "DESCRIPTION": (
        "The REST API of the peer-to-peer energy market. Authenticate with a token made on "
        "your settings page (`Authorization: Token <token>`). Every error is JSON "
        '`{"code", "message", "detail"?}` with a stable code; see docs/ledger.md.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from the drf-spectacular-sidecar package, served by us: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets with a common field name get a name of their own in the schema.
    "ENUM_NAME_OVERRIDES": {"MeterKindEnum": "meters.models.MeterKind"},
}

# --- internationalisation: UTC inside, the user's zone on screen ------------------------------

LANGUAGE_CODE = "en"
# Display only: the ledger counts integer minor units (cents) of this currency.
CURRENCY_SYMBOL = env.str("CURRENCY_SYMBOL", default="€")
# Email (registration links, password resets, a household's approval): EMAIL_URL, e.g.
# smtp+tls://user:password@mail.example.org:587, in production. Without it, with DEBUG on, each
# message is written to a file under MAIL_DIR (var/mail), which the demo's outbox page
# (/outbox/) shows, so a newcomer can follow a registration link; with DEBUG off, to the console.
MAIL_DIR = Path(env.str("MAIL_DIR", default=str(VAR_DIR / "mail")))
OUTBOX_PAGE = False
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(MAIL_DIR)
    OUTBOX_PAGE = True
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="gridplatform <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = 3 * 3600  # a reset link works for three hours
REGISTRATION_CONFIRM_TIMEOUT = 3 * 24 * 3600  # a registration link, for three days
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- static files: vendored, served by WhiteNoise, no CDN -------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing root

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"daphne": {"level": "WARNING"}},
}
