from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from gridplatform import views
from gridplatform.accounts import views as account_views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("console/operator/", views.operator_console, name="operator-console"),
    path("console/regulator/", views.regulator_console, name="regulator-console"),
    path("console/accounts/rows/", account_views.account_rows, name="account-rows"),
    path("accounts/register/", account_views.register, name="register"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
