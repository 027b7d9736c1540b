"""/supervision/: a household's transparency page and the supervisory acts' forms
(supervision/views.py); the consoles' pages are ``gridplatform.urls``'s, the API has its own
module."""

from __future__ import annotations

from django.urls import path

from supervision import views

urlpatterns = [
    path("", views.transparency, name="supervision"),
    path("stops/", views.transparency_stops, name="supervision-stops"),
    path("acts/", views.transparency_acts, name="supervision-acts"),
    path("notifications/", views.transparency_notifications, name="supervision-notifications"),
    path("notifications/read/", views.notifications_read, name="supervision-notifications-read"),
    path("trading-stop/", views.trading_stop, name="supervision-trading-stop"),
    # The consoles' alerts (site data, no transaction).
    path("alerts/acknowledge/", views.alert_acknowledge, name="supervision-alert-acknowledge"),
    # The regulator's acts.
    path("review/<str:contract_id>/", views.review_decide, name="supervision-review"),
    path("contract/", views.contract_act, name="supervision-contract"),
    path("contracts/<str:contract_id>/", views.contract_decide, name="supervision-contract-decide"),
    # The act forms' pickers: what matches as the regulator types (JSON).
    path("picks/accounts/", views.account_picks, name="supervision-account-picks"),
    path("picks/contracts/", views.contract_picks, name="supervision-contract-picks"),
    path("suspend/", views.trading_suspend, name="supervision-suspend"),
    path("resume/", views.trading_resume, name="supervision-resume"),
    path("account/", views.account_act, name="supervision-account"),
    # The grid operator's.
    path("feeders/publish/", views.feeder_publish, name="supervision-feeder-publish"),
    path("grid-state/", views.grid_state_declare, name="supervision-grid-state"),
]
