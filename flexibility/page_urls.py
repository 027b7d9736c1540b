"""/flexibility/: a household's page of requirements, answers, contracts and its store
(flexibility/views.py); the grid operator's is under the console (``console_urls``), the REST API
has its own module."""

from __future__ import annotations

from django.urls import path

from flexibility import views

urlpatterns = [
    path("", views.household_page, name="flexibility"),
    path("enrol/", views.enrol, name="flexibility-enrol"),
    path("requirements/", views.requirement_rows, name="flexibility-requirement-rows"),
    path("requirements/<str:requirement_id>/answer/", views.answer, name="flexibility-answer"),
    path("answers/", views.answer_rows, name="flexibility-answer-rows"),
    path("contracts/", views.contract_rows, name="flexibility-contract-rows"),
    path("stores/", views.store_rows, name="flexibility-store-rows"),
]
