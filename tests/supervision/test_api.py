"""Supervision's REST API: who may do what (every endpoint, every role), what each answers, bad
input refused with its code before anything is signed, and the OpenAPI schema; through real
signed transactions committed in real certified blocks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from gridplatform.accounts import services as account_services
from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms, ms_of_datetime
from market.models import Contract
from supervision.errors import MESSAGES
from supervision.models import AlertAcknowledgement, Notification
from tests.ledger.chains import OPERATOR, REGULATOR
from tests.ledger.site import Site
from tests.supervision.support import (
    address,
    commit,
    commit_sent,
    pending,
    slot_at,
    trade,
)

pytestmark = pytest.mark.django_db
API = "/api/v1/supervision"


@pytest.fixture
def flagged(site: Site, prosumer: User, consumer: User) -> Contract:
    """1,400 Wh from Ada (f1) to Ben (f2) in a slot to come: f2 imports 1,400 of 1,500 Wh, so
    it waits for review."""
    return trade(site, prosumer, consumer, 1_400, 120, slot_at(site, 4))


@pytest.fixture
def world(site: Site, flagged: Contract) -> Site:
    """Also: trading on f1 suspended until resumed."""
    suspend = {"scope": "feeder:f1", "reason": "storm damage", "until": 0}
    commit(site, [site.sign(REGULATOR, "supervision.trading.suspend", **suspend)])
    return site


@pytest.fixture
def clients(prosumer: User, grid_operator: User, regulator: User, admin: User) -> dict[str, Client]:
    return {
        "anonymous": Client(),
        "household": client_for(prosumer),
        "grid_operator": client_for(grid_operator),
        "regulator": client_for(regulator),
        "admin": client_for(admin),
    }


def client_for(user: User) -> Client:
    _, token = account_services.api_token_create(user=user, name="tests")
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def post(client: Client, path: str, body: Any = None) -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"{API}{path}", raw, content_type="application/json")


def get(client: Client, path: str) -> Any:
    response = client.get(f"{API}{path}")
    assert response.status_code == 200, response.json()
    return response.json()


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def iso(moment_ms: int) -> str:
    return datetime_of_ms(moment_ms).isoformat().replace("+00:00", "Z")


# --- who may do what -----------------------------------------------------------------------------

ROLES = ("anonymous", "household", "grid_operator", "regulator", "admin")
EVERYONE = {"household": 200, "grid_operator": 200, "regulator": 200, "admin": 200}
WATCHERS = {"grid_operator": 200, "regulator": 200, "admin": 200}
# (method, path, body, the roles allowed and their answer: every other role gets 403, and an
# anonymous caller 401). "{contract}" is the flagged contract's id.
MATRIX = [
    ("get", "/review", None, {"regulator": 200, "admin": 200}),
    (
        "post",
        "/review/{contract}/decision",
        {"decision": "clear", "reason": "a real local deal"},
        {"regulator": 202},
    ),
    ("get", "/acts", None, EVERYONE),
    (
        "post",
        "/acts",
        {"type": "veto", "contract": "{contract}", "reason": "wash trade"},
        {"regulator": 202},
    ),
    ("get", "/suspensions", None, EVERYONE),
    ("post", "/suspensions", {"scope": "market", "reason": "audit"}, {"regulator": 202}),
    ("post", "/suspensions/feeder:f1/resume", {"reason": "repaired"}, {"regulator": 202}),
    ("get", "/topology", None, EVERYONE),
    (
        "post",
        "/topology",
        {"feeder": "f3", "export_limit_w": 4_000, "import_limit_w": 4_000},
        {"grid_operator": 202},
    ),
    ("get", "/grid-state", None, EVERYONE),
    (
        "post",
        "/grid-state",
        {"scope": "grid", "state": "high_load", "reason": "heat wave"},
        {"grid_operator": 202},
    ),
    ("get", "/statistics", None, WATCHERS),
    ("get", "/feeder-loading", None, WATCHERS),
    ("get", "/alerts", None, WATCHERS),
    # For the caller's own desk (an administrator's: the grid operator's).
    ("post", "/alerts/suspension:feeder:f1/acknowledge", {}, dict.fromkeys(WATCHERS, 201)),
    ("get", "/notifications", None, {"household": 200}),
    ("post", "/notifications/read", {}, {"household": 200}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"),
    MATRIX,
    ids=[f"{method} {path}" for method, path, _, _ in MATRIX],
)
def test_each_role_gets_exactly_what_it_may(
    world: Site,
    flagged: Contract,
    clients: dict[str, Client],
    method: str,
    path: str,
    body: Any,
    allowed: dict[str, int],
) -> None:
    path = path.format(contract=flagged.id)
    raw = json.dumps(body).replace("{contract}", flagged.id) if body is not None else None
    for role in ROLES:
        client = clients[role]
        if method == "get":
            response = client.get(f"{API}{path}")
        else:
            response = client.post(f"{API}{path}", raw, content_type="application/json")
        if role == "anonymous":
            assert error_of(response) == (401, "not_authenticated"), role
        elif role in allowed:
            assert response.status_code == allowed[role], (role, response.json())
        else:
            assert error_of(response) == (403, "forbidden"), role
        sent = SubmittedTransaction.objects.count()
        assert sent == (1 if allowed.get(role) == 202 else 0), role
        SubmittedTransaction.objects.all().delete()
        acknowledged = AlertAcknowledgement.objects.count()
        assert acknowledged == (1 if allowed.get(role) == 201 else 0), role
        AlertAcknowledgement.objects.all().delete()


# --- what they get -------------------------------------------------------------------------------


def test_a_regulator_vetoes_a_flagged_contract_and_the_log_and_queue_show_it(
    site: Site, flagged: Contract, regulator: User, prosumer: User, consumer: User
) -> None:
    client = client_for(regulator)
    [item] = get(client, "/review")["results"]
    assert item["contract"]["id"] == flagged.id
    assert (item["contract"]["energy_wh"], item["status"], item["decided_by"]) == (
        1_400,
        "pending",
        "",
    )
    assert item["rules"] == [
        {
            "rule": "feeder_load",
            "detail": "feeder f2's import is at 93 % of its capacity (1,400 of 1,500 Wh)",
        }
    ]

    response = post(
        client, f"/review/{flagged.id}/decision", {"decision": "veto", "reason": "wash trade"}
    )
    assert response.status_code == 202
    [sent] = SubmittedTransaction.objects.all()
    assert response.json() == {"type": "supervision.contract.veto", "transaction": sent.tx_id}
    assert pending() == [
        {"type": "supervision.contract.veto", "contract": flagged.id, "reason": "wash trade"}
    ]
    assert commit_sent(site) == ["ok"]

    assert get(client, "/review")["results"] == []
    [vetoed] = get(client, "/review?status=vetoed")["results"]
    assert (vetoed["status"], vetoed["decided_by"], vetoed["contract"]["vetoed"]) == (
        "vetoed",
        sent.tx_id,
        True,
    )
    latest = get(client, "/acts")["results"][0]
    assert {k: latest[k] for k in ("tx", "type", "actor", "actor_role", "reason", "contract")} == {
        "tx": sent.tx_id,
        "type": "supervision.contract.veto",
        "actor": REGULATOR.address,
        "actor_role": "regulator",
        "reason": "wash trade",
        "contract": flagged.id,
    }
    assert latest["affected"] == [address(prosumer), address(consumer)]


def test_a_household_sees_only_the_acts_and_notifications_that_concern_it(
    world: Site, flagged: Contract, regulator: User, prosumer: User, outsider: User
) -> None:
    regulators = client_for(regulator)
    veto = {"type": "veto", "contract": flagged.id, "reason": "wash trade"}
    restrict = {"type": "restrict", "address": address(outsider), "reason": "tampering"}
    for body in (veto, restrict):
        assert post(regulators, "/acts", body).status_code == 202
    assert commit_sent(world) == ["ok", "ok"]

    def acts_of(user: User) -> list[tuple[str, str]]:
        rows = get(client_for(user), "/acts")["results"]
        return sorted(
            (row["type"], row["scope"] or row["address"] or row["contract"]) for row in rows
        )

    assert acts_of(prosumer) == [  # Ada: on f1, a party to the vetoed contract
        ("grid.feeder.publish", "feeder:f1"),
        ("supervision.contract.veto", flagged.id),
        ("supervision.trading.suspend", "feeder:f1"),
    ]
    assert acts_of(outsider) == [  # Olga: on f2, restricted
        ("grid.feeder.publish", "feeder:f2"),
        ("supervision.account.restrict", address(outsider)),
    ]
    assert len(get(regulators, "/acts")["results"]) == 5

    mine = client_for(outsider)
    [note] = get(mine, "/notifications")["results"]
    assert note["message"].startswith("A regulator restricted your account: tampering.")
    assert note["read"] is False
    others = Notification.objects.exclude(address=address(outsider)).values_list("id", flat=True)
    response = post(mine, "/notifications/read", {"ids": [note["id"], *others]})
    assert response.json() == {"marked": 1}
    assert get(mine, "/notifications")["results"][0]["read"] is True
    assert not Notification.objects.exclude(address=address(outsider)).filter(read=True).exists()


def test_everyone_reads_the_suspensions_topology_and_grid_state(
    world: Site, prosumer: User
) -> None:
    commit(
        world,
        [
            world.sign(
                OPERATOR, "grid.state.declare", scope="feeder:f2", state="unstable", reason="fault"
            )
        ],
    )
    client = client_for(prosumer)
    [suspension] = get(client, "/suspensions")
    assert (suspension["scope"], suspension["reason"], suspension["until"], suspension["by"]) == (
        "feeder:f1",
        "storm damage",
        None,
        REGULATOR.address,
    )
    topology = get(client, "/topology")
    assert [(f["name"], f["export_limit_w"], f["import_limit_w"]) for f in topology] == [
        ("f1", 8_000, 8_000),
        ("f2", 6_000, 6_000),
    ]
    state = get(client, "/grid-state")
    assert state["grid"] == {
        "state": "normal",
        "reason": "",
        "by": "",
        "tx": "",
        "height": None,
        "since": None,
    }
    assert [(f["feeder"], f["state"], f["reason"]) for f in state["feeders"]] == [
        ("f1", "normal", ""),
        ("f2", "unstable", "fault"),
    ]


def test_the_watchers_see_statistics_loading_and_alerts(
    world: Site, flagged: Contract, grid_operator: User, prosumer: User
) -> None:
    client = client_for(grid_operator)
    slot = iso(ms_of_datetime(flagged.slot))
    [stats] = get(client, "/statistics")
    assert stats == {
        "slot": slot,
        "carrier": "electricity",
        "contracts": 1,
        "volume_wh": 1_400,
        "median_price": 120,
        "shares": [
            {
                "seller": address(prosumer),
                "name": prosumer.name,
                "energy_wh": 1_400,
                "share_bps": 10_000,
            }
        ],
        "alert": True,
    }
    loading = {(row["feeder"], row["slot"]): row for row in get(client, "/feeder-loading")}
    assert set(loading) == {("f1", slot), ("f2", slot)}
    f2 = loading[("f2", slot)]
    assert (f2["import_wh"], f2["import_capacity_wh"], f2["import_pct"], f2["alert"]) == (
        1_400,
        1_500,
        93,
        True,
    )
    f1 = loading[("f1", slot)]
    assert (f1["export_wh"], f1["export_capacity_wh"], f1["export_pct"], f1["alert"]) == (
        1_400,
        2_000,
        70,
        False,
    )
    alerts = get(client, "/alerts")
    assert [(a["kind"], a["text"], a["slot"], a["feeder"]) for a in alerts] == [
        ("suspension", "Trading is suspended on feeder:f1: storm damage", None, "f1"),
        (
            "feeder_load",
            "Feeder f2: import at 93 % of its capacity (1,400 of 1,500 Wh)",
            slot,
            "f2",
        ),
        (
            "seller_share",
            "Ada Seller sells 100 % of the slot's volume (1,400 of 1,400 Wh)",
            slot,
            "",
        ),
    ]


def test_a_watcher_acknowledges_an_alert_for_its_desk_through_the_api(
    world: Site,
    flagged: Contract,
    grid_operator: User,
    regulator: User,
    admin: User,
    prosumer: User,
) -> None:
    client = client_for(grid_operator)
    slot = iso(ms_of_datetime(flagged.slot))
    key = f"seller_share:{address(prosumer)}"
    share = get(client, "/alerts")[2]
    assert share == {
        "kind": "seller_share",
        "text": "Ada Seller sells 100 % of the slot's volume (1,400 of 1,400 Wh)",
        "slot": slot,
        "feeder": "",
        "key": key,
        "fingerprint": "1:10",
        "slots": 1,
        "last_slot": slot,
        "level": 10,
        "acknowledged": False,
        "acknowledged_by": None,
        "acknowledged_at": None,
    }
    response = post(client, f"/alerts/{key}/acknowledge", {"fingerprint": "1:10"})
    assert response.status_code == 201, response.json()
    body = response.json()
    at = body.pop("at")
    assert body == {
        "key": key,
        "desk": "operator",
        "fingerprint": "1:10",
        "text": share["text"],
        "by": "Grid Operator",
    }
    share = get(client, "/alerts")[2]
    assert (share["acknowledged"], share["acknowledged_by"], share["acknowledged_at"]) == (
        True,
        "Grid Operator",
        at,
    )
    # Each desk its own: open for the regulators; an administrator may read either.
    assert not get(client_for(regulator), "/alerts")[2]["acknowledged"]
    assert get(client_for(admin), "/alerts?desk=operator")[2]["acknowledged"]
    assert not get(client_for(admin), "/alerts?desk=regulator")[2]["acknowledged"]
    assert not SubmittedTransaction.objects.exists()


def test_an_acknowledgement_is_refused_with_its_code_and_saves_nothing(
    world: Site, flagged: Contract, grid_operator: User, regulator: User, prosumer: User
) -> None:
    key = f"seller_share:{address(prosumer)}"
    operator, regulators = client_for(grid_operator), client_for(regulator)
    cases = [
        (operator, "seller_share:nobody", {}, (404, "unknown_alert")),
        (operator, key, "[]", (400, "malformed")),
        (operator, key, {"desk": "kitchen"}, (400, "bad_desk")),
        (operator, key, {"desk": 7}, (400, "bad_desk")),
        (operator, key, {"desk": "regulator"}, (403, "forbidden")),
        (regulators, key, {"desk": "operator"}, (403, "forbidden")),
        (operator, key, {"fingerprint": "2:10"}, (400, "alert_changed")),
    ]
    for client, alert, body, expected in cases:
        response = post(client, f"/alerts/{alert}/acknowledge", body)
        assert error_of(response) == expected, (alert, body)
        assert response.json()["message"] == MESSAGES[expected[1]]
    assert not AlertAcknowledgement.objects.exists()
    assert post(operator, f"/alerts/{key}/acknowledge", {}).status_code == 201
    again = post(operator, f"/alerts/{key}/acknowledge", {})
    assert error_of(again) == (400, "alert_acknowledged")
    assert AlertAcknowledgement.objects.count() == 1
    response = operator.get(f"{API}/alerts?desk=kitchen")
    assert error_of(response) == (400, "bad_desk")
    assert error_of(operator.get(f"{API}/alerts?desk=regulator")) == (403, "forbidden")


# --- bad input -----------------------------------------------------------------------------------

BAD = [
    ("/acts", "[]", "malformed"),
    ("/acts", {"type": "nuke"}, "bad_type"),
    ("/acts", {"type": "veto", "reason": "r"}, "unknown_contract"),
    ("/acts", {"type": "veto", "contract": "abc", "reason": "r"}, "unknown_contract"),
    ("/acts", {"type": "veto", "contract": "{contract}", "reason": ""}, "reason_required"),
    ("/acts", {"type": "veto", "contract": "{contract}", "reason": "   "}, "reason_required"),
    ("/acts", {"type": "veto", "contract": "{contract}", "reason": "x" * 501}, "reason_required"),
    (
        "/acts",
        {"type": "curtail", "contract": "{contract}", "energy_wh": "5", "reason": "r"},
        "bad_energy",
    ),
    (
        "/acts",
        {"type": "curtail", "contract": "{contract}", "energy_wh": 5.0, "reason": "r"},
        "bad_energy",
    ),
    ("/acts", {"type": "suspend", "scope": "everywhere", "reason": "r"}, "bad_scope"),
    ("/acts", {"type": "suspend", "scope": "market", "reason": "r", "until": "soon"}, "bad_until"),
    ("/acts", {"type": "restrict", "address": "x", "reason": "r"}, "bad_address"),
    ("/acts", {"type": "restrict", "address": "", "reason": "r"}, "bad_address"),
    ("/suspensions", {"scope": "feeder:F 1", "reason": "r"}, "bad_scope"),
    (
        "/suspensions",
        {"scope": "market", "reason": "r", "until": "2099-01-01T10:00:00"},
        "bad_until",
    ),
    ("/suspensions/nowhere/resume", {"reason": "r"}, "bad_scope"),
    ("/suspensions/market/resume", {}, "reason_required"),
    ("/topology", {"feeder": "F 1", "export_limit_w": 1, "import_limit_w": 1}, "bad_feeder"),
    ("/topology", {"feeder": "f3", "export_limit_w": -1, "import_limit_w": 1}, "bad_limit"),
    ("/topology", {"feeder": "f3", "export_limit_w": 1, "import_limit_w": "1"}, "bad_limit"),
    (
        "/topology",
        {"feeder": "f3", "export_limit_w": 1, "import_limit_w": 1, "carrier": "gas"},
        "bad_carrier",
    ),
    # A market of electricity alone has no heating network to publish a segment of.
    (
        "/topology",
        {"feeder": "f3", "export_limit_w": 1, "import_limit_w": 1, "carrier": "heat"},
        "bad_carrier",
    ),
    ("/grid-state", {"scope": "market", "state": "unstable", "reason": "r"}, "bad_scope"),
    ("/grid-state", {"scope": "grid", "state": "on_fire", "reason": "r"}, "bad_state"),
    ("/grid-state", {"scope": "grid", "state": "unstable"}, "reason_required"),
    ("/review/{contract}/decision", {"decision": "approve", "reason": "r"}, "bad_decision"),
    ("/review/{contract}/decision", {"decision": "curtail", "reason": "r"}, "bad_energy"),
    ("/review/{contract}/decision", {"decision": "veto", "reason": " "}, "reason_required"),
    ("/notifications/read", {"ids": "all"}, "bad_ids"),
    ("/notifications/read", {"ids": [1.5]}, "bad_ids"),
]


@pytest.mark.parametrize(("path", "body", "code"), BAD, ids=[f"{p} {c}" for p, _, c in BAD])
def test_it_refuses_bad_input_with_its_code_and_sends_nothing(
    world: Site,
    flagged: Contract,
    clients: dict[str, Client],
    path: str,
    body: Any,
    code: str,
) -> None:
    role = "household" if path.startswith("/notifications") else "regulator"
    if path in ("/topology", "/grid-state"):
        role = "grid_operator"
    raw = body if isinstance(body, str) else json.dumps(body)
    response = post(
        clients[role], path.format(contract=flagged.id), raw.replace("{contract}", flagged.id)
    )
    assert error_of(response) == (400, code), response.json()
    assert response.json()["message"] == MESSAGES[code]
    assert not SubmittedTransaction.objects.exists()


def test_it_answers_the_validators_refusals_at_once_and_sends_nothing(
    site: Site, prosumer: User, consumer: User, regulator: User
) -> None:
    started = trade(site, prosumer, consumer, 100, 100, slot_at(site, 0))
    suspend = {"scope": "feeder:f1", "reason": "storm damage", "until": 0}
    commit(site, [site.sign(REGULATOR, "supervision.trading.suspend", **suspend)])
    client = client_for(regulator)
    cases = [
        ({"type": "veto", "contract": started.id, "reason": "late"}, "delivery_started"),
        ({"type": "veto", "contract": "1-0", "reason": "nothing"}, "unknown_contract"),
        ({"type": "suspend", "scope": "feeder:f9", "reason": "r"}, "unknown_feeder"),
        ({"type": "suspend", "scope": "feeder:f1", "reason": "r"}, "already_suspended"),
        ({"type": "resume", "scope": "market", "reason": "r"}, "not_suspended"),
        ({"type": "defaults_reset", "address": address(consumer), "reason": "r"}, "no_defaults"),
    ]
    for body, code in cases:
        response = post(client, "/acts", body)
        assert error_of(response) == (400, code), body
    assert not SubmittedTransaction.objects.exists()


def test_it_does_not_know_a_decision_on_what_is_not_under_review(
    world: Site, regulator: User
) -> None:
    client = client_for(regulator)
    for contract_id in ("1-0", "nonsense", "1-0%00"):
        response = post(
            client, f"/review/{contract_id}/decision", {"decision": "clear", "reason": "r"}
        )
        assert error_of(response) == (404, "not_under_review")
    assert error_of(client.get(f"{API}/review?status=nope")) == (400, "bad_status")
    assert not SubmittedTransaction.objects.exists()


def test_a_suspension_with_an_end_is_sent_in_ms(world: Site, regulator: User) -> None:
    until_ms = slot_at(world, 20)
    body = {"scope": "market", "reason": "audit", "until": iso(until_ms).replace("Z", "+01:00")}
    response = post(client_for(regulator), "/suspensions", body)
    assert response.status_code == 202
    assert pending() == [
        {
            "type": "supervision.trading.suspend",
            "scope": "market",
            "reason": "audit",
            "until": until_ms - 3_600_000,  # the same wall time an hour east of UTC
        }
    ]


# --- the schema ----------------------------------------------------------------------------------


def test_it_publishes_every_supervision_endpoint_in_the_schema(db: None) -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    paths = schema["paths"]
    ours = {path: sorted(paths[path]) for path in paths if path.startswith(API)}
    assert ours == {
        f"{API}/review": ["get"],
        f"{API}/review/{{contract_id}}/decision": ["post"],
        f"{API}/acts": ["get", "post"],
        f"{API}/suspensions": ["get", "post"],
        f"{API}/suspensions/{{scope}}/resume": ["post"],
        f"{API}/topology": ["get", "post"],
        f"{API}/grid-state": ["get", "post"],
        f"{API}/statistics": ["get"],
        f"{API}/feeder-loading": ["get"],
        f"{API}/alerts": ["get"],
        f"{API}/alerts/{{key}}/acknowledge": ["post"],
        f"{API}/notifications": ["get"],
        f"{API}/notifications/read": ["post"],
    }
    assert len(MATRIX) == sum(len(methods) for methods in ours.values())
    operations = {op["operationId"] for path in ours for op in paths[path].values()}
    assert len(operations) == len(MATRIX)
    assert all(operation.startswith("supervision_") for operation in operations)
    send = paths[f"{API}/acts"]["post"]
    assert set(send["responses"]) == {"202", "400", "401", "403"}
    for code in ("bad_type", "reason_required", "delivery_started", "not_a_curtailment"):
        assert f"`{code}`" in send["description"]
    request = send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    act_request = schema["components"]["schemas"][request.rsplit("/", 1)[1]]
    assert act_request["discriminator"]["propertyName"] == "type"
    assert set(act_request["discriminator"]["mapping"]) == {
        "veto",
        "curtail",
        "suspend",
        "resume",
        "restrict",
        "reinstate",
        "defaults_reset",
    }
    assert "403" in paths[f"{API}/statistics"]["get"]["responses"]
