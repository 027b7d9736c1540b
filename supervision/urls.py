"""/api/v1/supervision/: supervision's REST API (supervision/api.py)."""

from __future__ import annotations

from django.urls import path

from supervision import api

app_name = "supervision-api"

urlpatterns = [
    path("review", api.ReviewListApi.as_view(), name="review-list"),
    path(
        "review/<str:contract_id>/decision",
        api.ReviewDecisionApi.as_view(),
        name="review-decision",
    ),
    path("acts", api.ActListApi.as_view(), name="act-list"),
    path("suspensions", api.SuspensionListApi.as_view(), name="suspension-list"),
    path(
        "suspensions/<str:scope>/resume",
        api.SuspensionResumeApi.as_view(),
        name="suspension-resume",
    ),
    path("topology", api.TopologyApi.as_view(), name="topology"),
    path("grid-state", api.GridStateApi.as_view(), name="grid-state"),
    path("statistics", api.StatisticsApi.as_view(), name="statistics"),
    path("feeder-loading", api.FeederLoadingApi.as_view(), name="feeder-loading"),
    path("alerts", api.AlertListApi.as_view(), name="alert-list"),
    path(
        "alerts/<str:key>/acknowledge",
        api.AlertAcknowledgeApi.as_view(),
        name="alert-acknowledge",
    ),
    path("notifications", api.NotificationListApi.as_view(), name="notification-list"),
    path("notifications/read", api.NotificationReadApi.as_view(), name="notification-read"),
]
