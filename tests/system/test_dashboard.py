"""The live dashboard (GET /ui) in a real browser: headless Debian chromium driven by selenium.

On a running 3-node cluster: the page loads, lists the three nodes with
exactly one leader, and shows a lock (holder, fencing token, a waiter and
the wait-for edge), a queue topic and the cache counters once they exist,
all through its own polling.  A screenshot goes to docs/dashboard.png.

Needs /usr/bin/chromium and /usr/bin/chromedriver (``./dev test`` installs
``chromium chromium-driver`` with apt when missing).  Without them the test
is skipped, unless the environment variable CI is set: then it fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from httpcall import post, retry_until_ok

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("RAKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RAKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
DEADLINE = 20.0  # seconds any one DOM condition may take (the page polls every second)


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (
                f"{path} is missing: install it with `sudo apt-get install chromium chromium-driver` "
                f"(package {package}), or run ./dev test, which does"
            )
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _missing_browser()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"dashboard browser test cannot run on CI: {missing}", pytrace=False)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver: Any, what: str, condition: Any, timeout: float = DEADLINE) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        errors = driver.execute_script(
            "return [...document.querySelectorAll('.err')].map(e => e.textContent).filter(Boolean)"
        )
        pytest.fail(f"the dashboard did not show {what} within {timeout:g} s (page errors: {errors})")


def rows(driver: Any, selector: str) -> list[dict[str, str]]:
    """The data-* attributes of the rows matching ``selector``, read in one script call (no stale elements)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => Object.assign({}, e.dataset))", selector
    )


def test_dashboard_shows_nodes_leader_locks_queue_and_cache(cluster_factory, browser) -> None:
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = cluster.urls
    page = next(url for node_id, url in urls.items() if node_id != leader)  # served by a follower

    browser.get(page + "/ui")
    assert browser.title == "rakit dashboard"

    def three_nodes_one_leader(d: Any) -> list[dict[str, str]] | None:
        nodes = rows(d, "#nodes-body tr[data-node-id]")
        leaders = [n for n in nodes if n["role"] == "leader"]
        ok = (
            len(nodes) == 3
            and all(n["role"] != "down" for n in nodes)
            and len(leaders) == 1
            and leaders[0]["nodeId"] == leader
        )
        return nodes if ok else None

    nodes = wait_until(browser, "three nodes and exactly one leader", three_nodes_one_leader)
    assert sorted(n["nodeId"] for n in nodes) == sorted(urls)
    wait_until(browser, "the leader in the header", lambda d: d.find_element("id", "leader").text == leader)
    assert browser.find_element("id", "served-by").text in urls

    # A lock, with a waiter, through the API (any node).
    s, grant = post(urls[leader] + "/lock/acquire", {"resource": "dash-orders", "client_id": "worker-1", "ttl": 60})
    assert s == 200, grant
    token = str(grant["fencing_token"])
    answers: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: answers.update(
            waiter=post(
                page + "/lock/acquire", {"resource": "dash-orders", "client_id": "worker-2", "timeout": 40}, timeout=60
            )
        )
    )
    waiter.start()
    try:
        lock = wait_until(
            browser,
            "the lock dash-orders held by worker-1 with worker-2 waiting",
            lambda d: next(
                (
                    r
                    for r in rows(d, "#locks-body tr[data-resource]")
                    if r["resource"] == "dash-orders" and r["holders"] == "worker-1" and r["waiters"] == "worker-2"
                ),
                None,
            ),
        )
        assert lock["mode"] == "exclusive"
        cell = browser.find_element("css selector", '#locks-body tr[data-resource="dash-orders"]').text
        assert "worker-1 (" + token + ")" in cell, cell
        wait_until(
            browser,
            "the wait-for edge worker-2 -> worker-1",
            lambda d: any(e["from"] == "worker-2" and e["to"] == "worker-1" for e in rows(d, "#edges li[data-from]")),
        )
        assert browser.find_element("id", "graph").is_displayed()

        # A queue topic and a cache key.
        for i in range(3):
            assert post(page + "/queue/push", {"topic": "dash-emails", "message": {"n": i}})[0] == 200
        assert retry_until_ok("POST", page + "/cache/set", {"key": "dash:user:42", "value": {"name": "Ada"}})[0] == 200
        reader = next(url for url in urls.values() if url != page)
        for _ in range(2):  # a peer fetch, then a local hit
            assert retry_until_ok("GET", reader + "/cache/get/dash:user:42")[0] == 200
        topic = wait_until(
            browser,
            "the topic dash-emails",
            lambda d: next((r for r in rows(d, "#topics-body tr[data-topic]") if r["topic"] == "dash-emails"), None),
        )
        assert topic["owner"] in urls
        wait_until(
            browser,
            "3 ready messages of dash-emails",
            lambda d: (
                d.find_element("css selector", '#topics-body tr[data-topic="dash-emails"] td[data-field="ready"]').text
                == "3"
            ),
        )
        page_node = browser.find_element("id", "served-by").text
        wait_until(
            browser,
            "the cache key counted on the node that wrote it",
            lambda d: (
                d.find_element("css selector", f'#cache-body tr[data-node-id="{page_node}"] td[data-field="size"]').text
                == "1"
            ),
        )
        wait_until(
            browser,
            "every cache serving",
            lambda d: [r.get("serving") for r in rows(d, "#cache-body tr[data-node-id]")] == ["true"] * 3,
        )
        # A semaphore with a holder and an election with a leader and a waiting candidate.
        sem = {"name": "dash-gpu", "limit": 3, "permits": 2, "client_id": "trainer-1", "ttl": 60}
        assert post(page + "/semaphore/acquire", sem)[0] == 200
        camp = {"name": "dash-beat", "value": {"host": "h1"}, "ttl": 60}
        s, elected = post(page + "/election/campaign", {**camp, "candidate_id": "beat-1"})
        assert s == 200, elected
        candidate = threading.Thread(
            target=post,
            args=(page + "/election/campaign", {**camp, "candidate_id": "beat-2", "timeout": 20}),
            kwargs={"timeout": 40},
            daemon=True,
        )
        candidate.start()
        semaphore = wait_until(
            browser,
            "the semaphore dash-gpu held by trainer-1",
            lambda d: next((r for r in rows(d, "#semaphores-body tr[data-semaphore]") if r["holders"]), None),
        )
        assert semaphore["semaphore"] == "dash-gpu"
        assert (
            browser.find_element(
                "css selector", '#semaphores-body tr[data-semaphore="dash-gpu"] td[data-field="available"]'
            ).text
            == "1"
        )
        wait_until(
            browser,
            "the election dash-beat led by beat-1 with beat-2 waiting",
            lambda d: "beat-2" in d.find_element("css selector", '#elections-body tr[data-election="dash-beat"]').text,
        )
        row = browser.find_element("css selector", '#elections-body tr[data-election="dash-beat"]')
        assert row.get_attribute("data-leader") == "beat-1" and str(elected["term"]) in row.text
        wait_until(browser, "the live badge", lambda d: d.find_element("id", "live").text == "live")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1440, max(1000, int(height) + 40))
        assert browser.save_screenshot(str(SCREENSHOT)), "could not write the screenshot"
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        post(urls[leader] + "/lock/release", {"resource": "dash-orders", "client_id": "worker-1"})
        waiter.join(60)
    s, second = answers["waiter"]
    assert s == 200 and second["fencing_token"] > grant["fencing_token"], second

    # The release shows up too: worker-2 holds, nobody waits, the edge is gone.
    wait_until(
        browser,
        "worker-2 holding dash-orders and no edge",
        lambda d: (
            any(
                r["resource"] == "dash-orders" and r["holders"] == "worker-2" and r["waiters"] == ""
                for r in rows(d, "#locks-body tr[data-resource]")
            )
            and not rows(d, "#edges li[data-from]")
        ),
    )


def test_a_missing_browser_is_named_with_the_packages_to_install(monkeypatch) -> None:
    pytest.importorskip("selenium")
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    message = _missing_browser()
    assert message is not None and CHROMIUM in message
    assert "apt-get install chromium chromium-driver" in message and "./dev test" in message


def test_dashboard_with_api_tokens(cluster_factory, browser, tmp_path) -> None:
    """With --auth-tokens the page is open but its data needs the admin grant: the token comes from
    ``/ui#token=...`` (kept in the tab, dropped from the URL) or from a prompt after a 401."""
    import json

    from selenium.webdriver.support import expected_conditions

    ops, orders = "ops-dashboard-token-0123456789", "orders-dashboard-token-0123456789"
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "ops", "token": ops, "grants": ["admin"]},
                    {"name": "orders", "token": orders, "grants": ["locks:*"]},
                ]
            }
        )
    )
    cluster = cluster_factory(3, env={"CLUSTER_SECRET": "dashboard-cluster-secret-0123", "AUTH_TOKENS": str(tokens)})
    page = next(iter(cluster.urls.values()))

    def three_nodes_up(d: Any) -> bool:
        nodes = rows(d, "#nodes-body tr[data-node-id]")
        return len(nodes) == 3 and all(n["role"] != "down" for n in nodes)

    browser.get(page + "/ui#token=" + ops)
    wait_until(browser, "the three nodes, with the token from the URL", three_nodes_up)
    assert "token" not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('rakit-token')") == ops

    # A token without the admin grant: 403 shown on the page, no prompt.
    browser.execute_script("sessionStorage.setItem('rakit-token', arguments[0])", orders)
    browser.get(page + "/ui")
    wait_until(browser, "the forbidden error", lambda d: "forbidden" in d.find_element("id", "cluster-error").text)

    # No token: the page asks for one.
    browser.execute_script("sessionStorage.clear()")
    browser.get(page + "/ui")
    alert = wait_until(browser, "a prompt for the token", expected_conditions.alert_is_present())
    alert.send_keys(ops)
    alert.accept()
    wait_until(browser, "the three nodes, with the token typed in", three_nodes_up)
