"""/api/v1/retail/: the REST API of energy sellers (retail/api.py)."""

from __future__ import annotations

from django.urls import path

from retail import api

app_name = "retail-api"

urlpatterns = [
    path("grants", api.GrantListApi.as_view(), name="grant-list"),
    path("grants/<str:carrier>/<str:retailer>", api.GrantDetailApi.as_view(), name="grant"),
    path("customers", api.CustomerListApi.as_view(), name="customer-list"),
    path("orders", api.OrderListApi.as_view(), name="order-list"),
    path("orders/<str:id>", api.OrderDetailApi.as_view(), name="order"),
]
