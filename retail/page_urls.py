"""/retail/: a household's grants to energy sellers and a retailer's page of its customers
(retail/views.py); the REST API has its own module."""

from __future__ import annotations

from django.urls import path

from retail import views

urlpatterns = [
    path("", views.grants_page, name="retail"),
    path("grant/", views.grant_give, name="retail-grant"),
    path("revoke/", views.grant_revoke, name="retail-revoke"),
    path("customers/", views.retailer_page, name="retail-customers"),
    path("customers/orders/", views.placed_order_rows, name="retail-placed-rows"),
    path("customers/orders/place/", views.order_place, name="retail-order-place"),
    path(
        "customers/orders/<str:order_id>/cancel/",
        views.order_cancel,
        name="retail-order-cancel",
    ),
]
