"""The landing page, the household dashboard and the consoles (dashboards/views.py), included at
the site's root by gridplatform/urls.py; and the dashboard's charts' data, whose path is under
/meters/ while the market serves it (it sets contracts beside the meters' readings)."""

from __future__ import annotations

from django.urls import path

from dashboards import views
from market import views as market_views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("console/operator/", views.operator_console, name="operator-console"),
    path(
        "console/operator/households/rows/",
        views.operator_household_rows,
        name="operator-household-rows",
    ),
    path(
        "console/operator/households/<int:user_id>/row/",
        views.operator_household_row,
        name="operator-household-row",
    ),
    path(
        "console/operator/flows/rows/",
        views.operator_latest_flow_rows,
        name="operator-latest-flow-rows",
    ),
    path(
        "console/operator/flows/<int:user_id>/row/",
        views.operator_latest_flow_row,
        name="operator-latest-flow-row",
    ),
    path("console/operator/summary/", views.operator_summary, name="operator-summary"),
    path(
        "console/households/<int:user_id>/",
        views.household_detail,
        name="console-household",
    ),
    path(
        "console/operator/participants/register/",
        views.operator_participant_register,
        name="operator-participant-register",
    ),
    path(
        "console/operator/households/<int:user_id>/enrol/",
        views.operator_household_enrol,
        name="operator-household-enrol",
    ),
    path(
        "console/operator/households/<int:user_id>/approve/",
        views.operator_household_approve,
        name="operator-household-approve",
    ),
    path(
        "console/operator/households/<int:user_id>/heat-segment/",
        views.operator_household_heat_segment,
        name="operator-household-heat-segment",
    ),
    path(
        "console/operator/households/<int:user_id>/top-up/",
        views.operator_household_top_up,
        name="operator-household-top-up",
    ),
    path(
        "console/operator/loading/rows/",
        views.operator_loading_rows,
        name="operator-loading-rows",
    ),
    path("console/operator/alerts/", views.operator_alerts, name="operator-alerts"),
    path("console/operator/grid/rows/", views.operator_grid_rows, name="operator-grid-rows"),
    path("console/regulator/", views.regulator_console, name="regulator-console"),
    path(
        "console/regulator/review/rows/",
        views.regulator_review_rows,
        name="regulator-review-rows",
    ),
    path(
        "console/regulator/contracts/rows/",
        views.regulator_contract_rows,
        name="regulator-contract-rows",
    ),
    path("console/regulator/audit/rows/", views.regulator_audit_rows, name="regulator-audit-rows"),
    path(
        "console/regulator/statistics/rows/",
        views.regulator_statistics_rows,
        name="regulator-statistics-rows",
    ),
    path("console/regulator/alerts/", views.regulator_alerts, name="regulator-alerts"),
    path("meters/flows.json", market_views.flows_json, name="meter-flows"),
]
