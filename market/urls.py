"""/api/v1/: the market's REST API (market/api.py)."""

from __future__ import annotations

from django.urls import path

from market import api

app_name = "market-api"

urlpatterns = [
    path("orders", api.OrderListApi.as_view(), name="order-list"),
    path("orders/<str:id>", api.OrderDetailApi.as_view(), name="order"),
    path("market/slots", api.SlotListApi.as_view(), name="slot-list"),
    path("market/slots/<str:slot>/book", api.BookApi.as_view(), name="book"),
    path("offers", api.OfferListApi.as_view(), name="offer-list"),
    path("offers/<str:id>", api.OfferDetailApi.as_view(), name="offer"),
    path("offers/<str:id>/accept", api.OfferAcceptApi.as_view(), name="offer-accept"),
    path("contracts", api.ContractListApi.as_view(), name="contract-list"),
    path("account", api.AccountApi.as_view(), name="account"),
    path("tariffs", api.TariffListApi.as_view(), name="tariff-list"),
]
