#!/usr/bin/env python
"""The screenshots in docs/screenshots/, taken from a running system with a real browser.

    make run                                   # in one terminal: the demo
    .venv/bin/python tools/screenshots.py      # in another, a few minutes later (some trading)
    #   options: --url http://127.0.0.1:8000 --out docs/screenshots --width 1280

Logs in as the demo's grid operator, regulator and a household (password of the demo), opens each
page (a household's page by following its row in the operator's households table), waits until
its live regions say they are live and its charts are drawn, and saves a full-page PNG. Headless
Chromium from the system (Debian's ``chromium``), driven by Playwright.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

PASSWORD = "sunny-feeder-2026"  # noqa: S105 (the demo's, printed by `make run`)
SHOTS = (
    # file, who logs in ("" nobody), page, and the link on it to follow first ("" none)
    ("operator-console.png", "operator@demo.example", "/console/operator/", ""),
    # A household's page as the grid operator reaches it: found in the households table.
    (
        "household.png",
        "operator@demo.example",
        "/console/operator/?q=ada%40demo.example",
        "Ada Okafor",
    ),
    ("operator-flexibility.png", "operator@demo.example", "/console/operator/flexibility/", ""),
    ("regulator-console.png", "regulator@demo.example", "/console/regulator/", ""),
    ("dashboard.png", "ada@demo.example", "/dashboard/", ""),
    ("market.png", "ada@demo.example", "/market/", ""),
    ("explorer.png", "", "/ledger/", ""),
)


def settle(page: Page) -> None:
    """Until every live region says it is live and every chart has been drawn (or said why
    not), at most 30 s; then a moment for the last re-fetches."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        regions = page.locator("[data-live-socket]")
        charts = page.locator("canvas[data-chart-state], canvas[data-loading-chart]")
        live = all(
            regions.nth(n).get_attribute("data-live-state") in ("live", "closed")
            for n in range(regions.count())
        )
        drawn = all(
            charts.nth(n).get_attribute("data-chart-state") not in (None, "")
            for n in range(charts.count())
        )
        if live and drawn:
            break
        page.wait_for_timeout(250)
    page.wait_for_timeout(1_500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "docs" / "screenshots"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for name, email, path, link in SHOTS:
            context = browser.new_context(
                base_url=args.url, viewport={"width": args.width, "height": 900}
            )
            page = context.new_page()
            if email:
                page.goto("/accounts/login/")
                page.get_by_label("Email address").fill(email)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_load_state("networkidle")
            page.goto(path)
            if link:
                page.get_by_role("link", name=link, exact=True).first.click()
                page.wait_for_load_state("networkidle")
            settle(page)
            page.screenshot(path=str(out / name), full_page=True)
            height = page.evaluate("document.documentElement.scrollHeight")
            print(f"{out / name}: {page.url} as {email or 'a visitor'}, {height} px high")
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
