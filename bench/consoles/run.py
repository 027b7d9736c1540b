#!/usr/bin/env python
"""Consoles at scale: the grid operator's console with the demo's 30 households and with a
community of 10,000, side by side in one run.

    DEBUG=1 .venv/bin/python bench/consoles/run.py                 # docs/benchmarks.md's figures
    DEBUG=1 .venv/bin/python bench/consoles/run.py --sizes 30,1000 # a quicker run
    #   other options: --requests 30 --window 60 --top-ups 40 --output FILE --keep

For each size, the whole system as the README's first command starts it (``manage.py runsystem
--demo``: SQLite, embedded Redis, four validators, the site's worker, the demo's simulator whose
30 households report readings every minute and trade on them), in a fresh directory of its own;
for a size above 30, ``manage.py seed_community --households N-30`` grows the community through
the running validators, and the run waits until the site's read models hold every household.
Then:

1. **First page, server time.** The grid operator, logged in, asks for ``/console/operator/``
   ``--requests`` times (after 3 unmeasured); reported: the median and p95 of the response time
   on the loopback interface (the server's time plus a loopback round trip: an upper bound of the
   server time), and the page's size.
2. **A block's live traffic.** A real browser (headless Chromium) opens the console as the grid
   operator, and the regulator's console beside it, and waits until every live region of both
   says it is live. For ``--window`` seconds the
   benchmark counts every byte the page receives: WebSocket frames and the bodies of every HTTP
   response (the partials the live regions re-fetch), while the simulator trades and reads and
   the benchmark tops up ``--top-ups`` households, a quarter of them on the console's first page
   (their rows must change) and the rest on other pages (they must cost this page nothing).
   Reported: the blocks the page was told of, the bytes and requests per block (mean and the
   largest second), and whether every topped-up row on the page showed its new balance.

The ratio of each figure at the large size to the small one is the point: the console's cost
must not grow with the community.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.common import log, machine, watchdog  # noqa: E402

PYTHON = sys.executable
MANAGE = str(ROOT / "manage.py")
OPERATOR = "operator@demo.example"
PASSWORD = "sunny-feeder-2026"  # noqa: S105 (gridplatform.demo.DEMO_PASSWORD, public)
DEMO_HOUSEHOLDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class System:
    """``manage.py runsystem --demo`` in a directory of its own."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "VAR_DIR": str(directory),
            "PYTHONPATH": str(ROOT),
        }
        for name in ("DATABASE_URL", "REDIS_URL", "LEDGER_DIR", "LEDGER_STORE_URL"):
            self.env.pop(name, None)  # the embedded defaults, as `make run`
        self.log = (directory / "runsystem.log").open("wb")
        self.process = subprocess.Popen(
            [PYTHON, MANAGE, "runsystem", "--demo", f"--port={port}"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_up(self, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runsystem exited; see {self.directory / 'runsystem.log'}")
            text = (self.directory / "runsystem.log").read_text(errors="replace")
            if "The grid platform is running" in text:
                return
            time.sleep(1)
        raise RuntimeError("runsystem did not come up")

    def manage(self, *args: str, timeout: float = 3_600) -> str:
        done = subprocess.run(
            [PYTHON, MANAGE, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def counts(self) -> dict[str, int]:
        script = (
            "import json;"
            "from gridplatform.accounts.models import User;"
            "from market.models import MarketAccount;"
            "from ledger.models import LedgerAccount;"
            "print(json.dumps({"
            "'households': User.objects.filter(role='household').count(),"
            "'on_ledger': LedgerAccount.objects.count(),"
            "'with_feeder': MarketAccount.objects.exclude(feeder='').count()}))"
        )
        return dict(json.loads(self.manage("shell", "-c", script).strip().splitlines()[-1]))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


class Session:
    """A browser-like HTTP client: cookies, CSRF token, keep nothing else."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next((c.value or "" for c in self.jar if c.name == name), "")

    def get(self, path: str) -> bytes:
        with self.opener.open(self.url + path, timeout=60) as answer:
            body: bytes = answer.read()
            return body

    def post(self, path: str, data: dict[str, str]) -> bytes:
        fields = {**data, "csrfmiddlewaretoken": self.cookie("csrftoken")}
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            self.url + path,
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Referer": self.url + path},
        )
        with self.opener.open(request, timeout=60) as answer:
            body: bytes = answer.read()
            return body


def logged_in(url: str) -> Session:
    session = Session(url)
    session.get("/accounts/login/")
    session.post("/accounts/login/", {"username": OPERATOR, "password": PASSWORD})
    if not session.cookie("sessionid"):
        raise RuntimeError("could not log in as the grid operator")
    return session


def first_page_times(url: str, count: int) -> dict[str, Any]:
    session = logged_in(url)
    times, size = [], 0
    for n in range(count + 3):
        started = time.perf_counter()
        size = len(session.get("/console/operator/"))
        elapsed = time.perf_counter() - started
        if n >= 3:
            times.append(elapsed * 1_000)
    times.sort()
    return {
        "requests": count,
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "page_bytes": size,
    }


def household_ids(session: Session, page: int) -> list[int]:
    html = session.get(f"/console/operator/?page={page}").decode()
    # Only the households table's rows (data-household), each once.
    return list(dict.fromkeys(int(n) for n in re.findall(r'data-household="([0-9]+)"', html)))


def top_up(session: Session, household: int) -> None:
    session.post(
        f"/console/operator/households/{household}/top-up/", {"amount": "1.00", "confirm": "yes"}
    )


REGULATOR = "regulator@demo.example"


class Watch:
    """A console open in a browser context of its own, logged in as ``email``: every byte it
    receives while counting (WebSocket frames; HTTP responses' headers and bodies, by path),
    and the blocks it was told of."""

    def __init__(self, browser: Any, url: str, email: str, path: str) -> None:
        self.received: list[tuple[float, str, int]] = []  # (time, kind, bytes)
        self.by_path: dict[str, list[int]] = {}  # path: [requests, bytes]
        self.heights: set[int] = set()
        self.counting = False
        self.started = 0.0
        self.page = browser.new_context(base_url=url).new_page()
        self.page.goto("/accounts/login/")
        self.page.get_by_label("Email address").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_load_state("networkidle")
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        self.page.on("requestfinished", self._finished)
        self.page.goto(path)
        regions = self.page.locator("[data-live-socket]")
        deadline = time.monotonic() + 60
        while not all(
            regions.nth(n).get_attribute("data-live-state") == "live"
            for n in range(regions.count())
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: the live regions did not all go live")
            self.page.wait_for_timeout(250)

    def _frame(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else payload.decode(errors="replace")
        if self.counting:
            self.received.append((time.monotonic(), "ws", len(text.encode())))
            if '"ledger.block"' in text:
                self.heights.add(int(json.loads(text)["height"]))

    def _finished(self, request: Any) -> None:
        if not self.counting:
            return
        sizes = request.sizes()
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        self.received.append((time.monotonic(), "http", size))
        path = re.sub(r"/[0-9]+/", "/<id>/", urllib.parse.urlsplit(request.url).path)
        counts = self.by_path.setdefault(path, [0, 0])
        counts[0] += 1
        counts[1] += size

    def start(self) -> None:
        self.heights.clear()
        self.counting = True
        self.started = time.monotonic()

    def summary(self, window_s: float) -> dict[str, Any]:
        self.counting = False
        blocks = max(1, len(self.heights))
        total = sum(size for _, _, size in self.received)
        requests = sum(1 for _, kind, _ in self.received if kind == "http")
        per_second: dict[int, int] = {}
        for moment, _, size in self.received:
            second = int(moment - self.started)
            per_second[second] = per_second.get(second, 0) + size
        return {
            "window_s": window_s,
            "blocks": len(self.heights),
            "bytes": total,
            "ws_bytes": sum(size for _, kind, size in self.received if kind == "ws"),
            "http_requests": requests,
            "bytes_per_block": total // blocks,
            "http_requests_per_block": round(requests / blocks, 1),
            "largest_second_bytes": max(per_second.values(), default=0),
            "by_path": {
                path: {"requests": n, "bytes": size, "bytes_per_block": size // blocks}
                for path, (n, size) in sorted(self.by_path.items(), key=lambda i: -i[1][1])
            },
        }


def live_traffic(url: str, window_s: float, top_ups: int) -> dict[str, Any]:
    """Both consoles open at once, counted over the same window."""
    from playwright.sync_api import sync_playwright

    session = logged_in(url)
    shown = household_ids(session, 1)
    others = [h for p in (2, 3, 4) for h in household_ids(session, p) if h not in shown]
    on_page = shown[: max(1, top_ups // 4)]
    elsewhere = others[: top_ups - len(on_page)]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        operating = Watch(browser, url, OPERATOR, "/console/operator/")
        supervising = Watch(browser, url, REGULATOR, "/console/regulator/")
        time.sleep(3)  # the first re-fetches of every region, once each socket opened
        operating.start()
        supervising.start()
        for household in on_page + elsewhere:
            top_up(session, household)
            operating.page.wait_for_timeout(1)  # the browser's events are taken in meanwhile
        # At least the window, and 10 s after the last top-up for its block to arrive.
        until = max(operating.started + window_s, time.monotonic() + 10)
        while time.monotonic() < until:
            operating.page.wait_for_timeout(500)
        window_s = time.monotonic() - operating.started
        operator_figures = operating.summary(window_s)
        regulator_figures = supervising.summary(window_s)
        # Did the rows on the page follow their top-ups without a reload?
        balances = {
            household: operating.page.locator(f'tr[data-household="{household}"] td')
            .nth(3)
            .inner_text()
            for household in on_page
        }
        browser.close()
    html = logged_in(url).get("/console/operator/").decode()
    followed = 0
    for household, shown_balance in balances.items():
        row = re.search(rf'<tr data-household="{household}".*?</tr>', html, flags=re.DOTALL)
        if row and shown_balance.strip() in re.sub(r"<[^>]+>", "", row.group(0)):
            followed += 1
    operator_figures |= {
        "top_ups_on_page": len(on_page),
        "top_ups_elsewhere": len(elsewhere),
        "rows_followed": followed,
    }
    return {"operator": operator_figures, "regulator": regulator_figures}


def run_size(size: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    directory = base / f"size-{size}"
    directory.mkdir(parents=True)
    system = System(directory, free_port())
    try:
        system.wait_up()
        log(f"{size}: system up at {system.url}")
        if size > DEMO_HOUSEHOLDS:
            started = time.monotonic()
            system.manage("seed_community", f"--households={size - DEMO_HOUSEHOLDS}")
            log(f"{size}: seeded in {time.monotonic() - started:.0f} s; waiting for the site")
        deadline = time.monotonic() + 1_800
        while True:
            counts = system.counts()
            if counts["with_feeder"] >= size:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the site's read models did not catch up: {counts}")
            time.sleep(5)
        log(f"{size}: the site holds {counts}")
        timing = first_page_times(system.url, args.requests)
        log(f"{size}: first page {timing}")
        traffic = live_traffic(system.url, args.window, args.top_ups)
        for console, figures in traffic.items():
            brief = {k: v for k, v in figures.items() if k != "by_path"}
            log(f"{size}: live traffic of the {console} console {brief}")
        return {
            "households": size,
            "counts": counts,
            "first_page": timing,
            "live": traffic["operator"],
            "live_regulator": traffic["regulator"],
        }
    finally:
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=f"{DEMO_HOUSEHOLDS},10000")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--top-ups", type=int, default=40)
    parser.add_argument("--output", default="")
    parser.add_argument("--keep", action="store_true", help="keep the systems' directories")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="bench-consoles-"))
    watchdog(3 * 3_600, lambda: None)
    result: dict[str, Any] = {"machine": machine(), "arguments": vars(args), "sizes": []}
    for size in sizes:
        result["sizes"].append(run_size(size, args, base))
    small, large = result["sizes"][0], result["sizes"][-1]
    result["ratios"] = {
        "first_page_median": round(
            large["first_page"]["median_ms"] / small["first_page"]["median_ms"], 2
        ),
        "bytes_per_block": round(
            large["live"]["bytes_per_block"] / max(1, small["live"]["bytes_per_block"]), 2
        ),
        "regulator_bytes_per_block": round(
            large["live_regulator"]["bytes_per_block"]
            / max(1, small["live_regulator"]["bytes_per_block"]),
            2,
        ),
    }
    output = (
        Path(args.output)
        if args.output
        else (
            ROOT
            / "bench"
            / "consoles"
            / "results"
            / f"{time.strftime('%Y%m%d-%H%M%S')}-consoles.json"
        )
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    log(f"ratios {result['ratios']}; written to {output}")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
