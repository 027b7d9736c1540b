"""/api/v1/meters: the meters' REST API (meters/api.py)."""

from __future__ import annotations

from django.urls import path

from meters import api

app_name = "meters-api"

urlpatterns = [
    path("meters", api.MeterListApi.as_view(), name="meter-list"),
    path("meters/<str:meter_id>", api.MeterDetailApi.as_view(), name="meter"),
    path("meters/<str:meter_id>/token", api.MeterTokenApi.as_view(), name="meter-token"),
    path("meters/<str:meter_id>/readings", api.ReadingListApi.as_view(), name="readings"),
]
