"""The forms: a feeder's limits typed in kW become the ledger's integer W exactly, or an error; a
contract is named by its id, of any carrier."""

from __future__ import annotations

import pytest

from market.forms import power_text
from supervision.forms import ContractActForm, FeederPublishForm


def publish_form(export_kw: str, import_kw: str = "1") -> FeederPublishForm:
    return FeederPublishForm(
        {
            "feeder-feeder": "f1",
            "feeder-export_limit_kw": export_kw,
            "feeder-import_limit_kw": import_kw,
        },
        prefix="feeder",
    )


@pytest.mark.parametrize(
    ("typed", "watts"),
    [("60", 60_000), ("7.5", 7_500), ("0.001", 1), ("0", 0), (" 12.250 ", 12_250)],
)
def test_a_limit_in_kw_becomes_whole_watts(typed: str, watts: int) -> None:
    form = publish_form(typed)
    assert form.is_valid(), form.errors
    assert form.cleaned_data == {
        "feeder": "f1",
        "export_limit_w": watts,
        "import_limit_w": 1_000,
    }


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("", "Enter the export limit in kW."),
        ("-5", "Enter the limit in kW as a number of 0 or more"),
        ("5e3", "Enter the limit in kW as a number of 0 or more"),
        ("1.0005", "A limit has at most three decimals in kW"),
        ("2000000000", "That limit is beyond any feeder"),
    ],
)
def test_a_bad_limit_is_named(typed: str, error: str) -> None:
    form = publish_form(typed)
    assert not form.is_valid()
    assert error in form.errors["export_limit_kw"][0]
    assert "import_limit_kw" not in form.errors


@pytest.mark.parametrize(
    ("watts", "text"),
    [(60_000, "60 kW"), (7_500, "7.5 kW"), (1, "0.001 kW"), (1_234_500, "1,234.5 kW")],
)
def test_a_limit_reads_in_kw_exactly(watts: int, text: str) -> None:
    assert power_text(watts) == text


@pytest.mark.parametrize(
    ("typed", "valid"),
    [
        ("1767225600000-0", True),
        (" heat-1767225600000-12 ", True),  # heat's contracts carry their carrier
        ("1767225600000", False),
        ("heat-", False),
        ("1767225600000-0; drop", False),
    ],
)
def test_a_contract_is_named_by_its_id_of_any_carrier(typed: str, valid: bool) -> None:
    form = ContractActForm(
        {"contract-act": "veto", "contract-contract": typed, "contract-reason": "Too large"},
        prefix="contract",
    )
    assert form.is_valid() is valid, form.errors
    if valid:
        assert form.cleaned_data["contract"] == typed.strip()
    else:
        assert form.errors["contract"] == [
            "A contract id is its slot and number, such as 1767225600000-0."
        ]
