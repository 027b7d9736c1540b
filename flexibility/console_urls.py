"""/console/operator/flexibility/: the grid operator's page of requirements, answers,
flexibility contracts and stores (flexibility/views.py)."""

from __future__ import annotations

from django.urls import path

from flexibility import views

urlpatterns = [
    path("", views.operator_page, name="operator-flexibility"),
    path("requirements/post/", views.requirement_post, name="operator-flexibility-post"),
    path(
        "requirements/rows/",
        views.operator_requirement_rows,
        name="operator-flexibility-requirement-rows",
    ),
    path(
        "answers/<str:answer_id>/accept/",
        views.answer_accept,
        name="operator-flexibility-accept",
    ),
    path("stores/register/", views.store_register, name="operator-flexibility-store"),
]
