"""/meters/: a household's meters page (meters/views.py); the REST API has its own module. The
data of its charts, ``/meters/flows.json`` (``meter-flows``), is the market's
(``market.views.flows_json``, routed by ``dashboards.urls``)."""

from __future__ import annotations

from django.urls import path

from meters import views

urlpatterns = [
    path("", views.meter_page, name="meters"),
    path("register/", views.meter_register, name="meter-register"),
    path("<str:meter_id>/token/rotate/", views.meter_token_rotate, name="meter-token-rotate"),
    path("<str:meter_id>/token/revoke/", views.meter_token_revoke, name="meter-token-revoke"),
]
