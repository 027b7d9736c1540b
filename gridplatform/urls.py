"""The composition root: every app's URLs under its prefix (each app's own urls modules)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gridplatform import views
from gridplatform.accounts import views as account_views
from gridplatform.throttling import address_rate_limited
from ledger import views as ledger_views

# Unknown URLs and crashes under /api/ answer JSON like every other API error.
handler404 = "gridplatform.api.page_not_found"
handler500 = "gridplatform.api.server_error"

urlpatterns = [
    # The landing page, the dashboard and the consoles; /meters/flows.json too (dashboards.urls).
    path("", include("dashboards.urls")),
    path("console/accounts/rows/", account_views.account_rows, name="account-rows"),
    # The forms that cost a password hash are limited per client address (POSTs only).
    path("accounts/register/", address_rate_limited(account_views.register), name="register"),
    path("accounts/register/sent/", account_views.register_sent, name="register-sent"),
    path(
        "accounts/register/confirm/<str:token>/",
        address_rate_limited(account_views.register_confirm),
        name="register-confirm",
    ),
    path("outbox/", views.outbox, name="outbox"),
    path("accounts/login/", address_rate_limited(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        address_rate_limited(account_views.PasswordChangeView.as_view()),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    # A forgotten password: Django's own reset flow, by email (settings: EMAIL_URL).
    path(
        "accounts/password/reset/",
        address_rate_limited(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        address_rate_limited(account_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("accounts/settings/", account_views.account_settings, name="account-settings"),
    path("accounts/settings/tokens/", account_views.api_token_create, name="api-token-create"),
    path("accounts/settings/time-zone/", account_views.time_zone_set, name="time-zone-set"),
    path(
        "accounts/settings/display-name/",
        account_views.display_name_set,
        name="display-name-set",
    ),
    path(
        "accounts/settings/tokens/<int:token_id>/revoke/",
        account_views.api_token_revoke,
        name="api-token-revoke",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from our own static files (drf-spectacular-sidecar, no CDN). The split view
    # serves its start-up script as a file, and our template drops drf-spectacular's inline
    # <style>: the page works under the site's CSP, which allows no inline script or style.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
    path("console/operator/flexibility/", include("flexibility.console_urls")),
    path("api/v1/ledger/", include("ledger.urls")),
    path("api/v1/flexibility/", include("flexibility.urls")),
    path("api/v1/retail/", include("retail.urls")),
    path("api/v1/supervision/", include("supervision.urls")),
    path("api/v1/", include("market.urls")),
    path("api/v1/", include("meters.urls")),
    path("market/", include("market.page_urls")),
    path("meters/", include("meters.page_urls")),
    path("supervision/", include("supervision.page_urls")),
    path("flexibility/", include("flexibility.page_urls")),
    path("retail/", include("retail.page_urls")),
    # The block explorer: public, anonymous visitors rate-limited (ledger.public).
    path("ledger/", ledger_views.block_list, name="ledger-blocks"),
    path("accounts/settings/key/", ledger_views.signing_key, name="ledger-signing-key"),
    path("ledger/rows/", ledger_views.block_rows, name="ledger-block-rows"),
    path("ledger/blocks/<int:height>/", ledger_views.block_detail, name="ledger-block"),
    path("ledger/tx/<str:tx_id>/", ledger_views.transaction_detail, name="ledger-transaction"),
    path("ledger/search/", ledger_views.search, name="ledger-search"),
    path("ledger/address/<str:address>/", ledger_views.address_detail, name="ledger-address"),
    path("ledger/validators/", ledger_views.validator_list, name="ledger-validators"),
    path("ledger/state/", ledger_views.state_proof, name="ledger-state"),
    path("ledger/validators/rows/", ledger_views.validator_rows, name="ledger-validator-rows"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
