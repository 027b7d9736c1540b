"""/api/v1/ledger/: the ledger's REST API (ledger/api.py)."""

from __future__ import annotations

from django.urls import path

from ledger import api

app_name = "ledger-api"

urlpatterns = [
    path("transactions", api.TransactionSubmitApi.as_view(), name="transaction-submit"),
    path("transactions/<str:id>", api.TransactionDetailApi.as_view(), name="transaction"),
    path("blocks", api.BlockListApi.as_view(), name="block-list"),
    path("blocks/<int:height>", api.BlockDetailApi.as_view(), name="block"),
    path("blocks/<int:height>/events/<int:index>", api.EventProofApi.as_view(), name="event"),
    path("accounts/<str:address>", api.AccountDetailApi.as_view(), name="account"),
    path("key", api.KeyTakeOverApi.as_view(), name="key-take-over"),
    path("validators", api.ValidatorListApi.as_view(), name="validator-list"),
    path("genesis", api.GenesisApi.as_view(), name="genesis"),
    path("state", api.StateProofListApi.as_view(), name="state-list"),
    path("state/<path:key>", api.StateProofApi.as_view(), name="state"),
]
