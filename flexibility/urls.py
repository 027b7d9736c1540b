"""/api/v1/flexibility/: the REST API of requirements and stores (flexibility/api.py)."""

from __future__ import annotations

from django.urls import path

from flexibility import api

app_name = "flexibility-api"

urlpatterns = [
    path("requirements", api.RequirementListApi.as_view(), name="requirement-list"),
    path("requirements/<str:id>", api.RequirementDetailApi.as_view(), name="requirement"),
    path("requirements/<str:id>/answers", api.AnswerPostApi.as_view(), name="answer-post"),
    path("answers", api.AnswerListApi.as_view(), name="answer-list"),
    path("answers/<str:id>/accept", api.AnswerAcceptApi.as_view(), name="answer-accept"),
    path("enrolments", api.EnrolmentApi.as_view(), name="enrolment-list"),
    path("baseline", api.BaselineApi.as_view(), name="baseline"),
    path("contracts", api.ContractListApi.as_view(), name="contract-list"),
    path("stores", api.StoreListApi.as_view(), name="store-list"),
]
