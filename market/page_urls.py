"""/market/: the market's pages (market/views.py); its REST API has its own module."""

from __future__ import annotations

from django.urls import path

from market import views

urlpatterns = [
    path("", views.trade, name="market"),
    path("slots/", views.slot_rows, name="market-slots"),
    path("book/", views.book, name="market-book"),
    path("money/", views.money, name="market-money"),
    path("orders/", views.order_rows, name="market-orders"),
    path("orders/place/", views.order_place, name="market-order-place"),
    path("orders/<str:order_id>/cancel/", views.order_cancel, name="market-order-cancel"),
    path("offers/", views.offer_rows, name="market-offers"),
    path("offers/mine/", views.my_offer_rows, name="market-my-offers"),
    path("offers/post/", views.offer_post, name="market-offer-post"),
    path("offers/<str:offer_id>/accept/", views.offer_accept, name="market-offer-accept"),
    path("offers/<str:offer_id>/withdraw/", views.offer_withdraw, name="market-offer-withdraw"),
    path("contracts/", views.contract_rows, name="market-contracts"),
    path("rules/", views.rule_create, name="market-rule-create"),
    path("rules/preview/", views.rule_preview, name="market-rule-preview"),
    path("tariffs/", views.tariffs, name="market-tariffs"),
    path("statements/", views.statement_page, name="market-statements"),
    path("statements.csv", views.statement_csv, name="market-statements-csv"),
    path("bill/", views.bill_page, name="market-bill"),
    path("bill.csv", views.bill_csv, name="market-bill-csv"),
    path("rules/<int:rule_id>/stop/", views.rule_stop, name="market-rule-stop"),
]
