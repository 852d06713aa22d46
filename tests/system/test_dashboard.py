"""The live dashboard (GET /ui) in a real browser: headless Debian chromium driven by selenium.

On a running 3-node cluster: the page loads, lists the three nodes with
exactly one leader, and shows a lock (holder, fencing token, a waiter and
the wait-for edge), a queue topic and the cache counters once they exist,
all through its own polling.  A screenshot goes to docs/dashboard.png.  The
KV section reads a prefix a page at a time and follows its changes live
(an EventSource; with API tokens a long poll, which can send the token).

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

from httpcall import call, post, retry_until_ok

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
        # Two KV keys, one changed after the page read them (for the screenshot, and the watch's log).
        assert post(page + "/kv/put", {"key": "dash:config", "value": {"replicas": 3, "region": "eu-west"}})[0] == 200
        assert post(page + "/kv/put", {"key": "dash:flags", "value": {"dark_mode": False}})[0] == 200
        wait_until(browser, "the two KV keys", lambda d: sorted(kv_rows(d)) == ["dash:config", "dash:flags"])
        assert post(page + "/kv/put", {"key": "dash:flags", "value": {"dark_mode": True}})[0] == 200
        wait_until(browser, "the KV change", lambda d: kv_rows(d)["dash:flags"]["version"] == "2")
        wait_until(
            browser,
            "every node's KV counters at the change",
            lambda d: (
                [n.get("revision") for n in rows(d, "#kv-nodes-body tr[data-node-id]")]
                == [kv_rows(d)["dash:flags"]["modRevision"]] * 3
            ),
        )
        wait_until(browser, "the live badge", lambda d: d.find_element("id", "live").text == "live")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        height, frame = browser.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
        )
        browser.set_window_size(1440, max(1000, int(height) + int(frame) + 20))  # the whole page in the viewport
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


def kv_rows(driver: Any) -> dict[str, dict[str, str]]:
    return {r["key"]: r for r in rows(driver, "#kv-body tr[data-key]")}


def show_prefix(driver: Any, prefix: str) -> None:
    field = driver.find_element("id", "kv-prefix")
    field.clear()
    field.send_keys(prefix)
    driver.find_element("id", "kv-show").click()


def kv_txn_put(url: str, items: dict[str, Any]) -> int:
    s, done = post(
        url + "/kv/txn", {"compare": [], "success": [{"put": {"key": k, "value": v}} for k, v in items.items()]}
    )
    assert s == 200 and done["succeeded"], done
    return int(done["revision"])


def test_kv_section_pages_through_a_prefix_and_follows_its_changes(cluster_factory, browser) -> None:
    cluster = cluster_factory(3)
    leader = cluster.wait_for_leader(timeout=15)
    urls = cluster.urls
    page_node, page = next((node_id, url) for node_id, url in urls.items() if node_id != leader)
    names = [f"dash-kv:{i:03d}" for i in range(120)]  # more than a page (100)
    created = kv_txn_put(page, {k: {"n": i} for i, k in enumerate(names[:60])})
    revision = kv_txn_put(page, {k: {"n": i} for i, k in enumerate(names[60:], 60)})
    assert post(page + "/kv/put", {"key": "other:1", "value": 1})[0] == 200

    browser.get(page + "/ui")
    show_prefix(browser, "dash-kv:")
    first = wait_until(browser, "the first page of dash-kv:", lambda d: len(kv_rows(d)) == 100 and kv_rows(d))
    assert sorted(first) == names[:100]
    assert first["dash-kv:007"]["modRevision"] == str(created) and first["dash-kv:007"]["version"] == "1"
    assert browser.find_element("id", "kv-more").is_displayed()
    assert int(browser.find_element("id", "kv-summary").get_attribute("data-revision")) > revision
    browser.find_element("id", "kv-more").click()
    wait_until(browser, "all 120 keys after 'more keys'", lambda d: sorted(kv_rows(d)) == names)
    assert not browser.find_element("id", "kv-more").is_displayed()
    wait_until(
        browser,
        "an open EventSource watch",
        lambda d: (
            d.find_element("id", "kv-watch").text == "watching"
            and "EventSource" in (d.find_element("id", "kv-watch").get_attribute("title") or "")
        ),
    )

    # Changes through other nodes show up without a reload: an update, a new key, a delete; not another prefix.
    writer = urls[leader]
    s, updated = post(writer + "/kv/put", {"key": "dash-kv:050", "value": "x" * 300})
    assert s == 200
    assert post(writer + "/kv/put", {"key": "dash-kv:999", "value": [1, 2]})[0] == 200
    assert post(writer + "/kv/delete", {"key": "dash-kv:000"})[0] == 200
    s, last = post(writer + "/kv/put", {"key": "other:2", "value": 2})
    assert s == 200

    def changed(d: Any) -> dict[str, dict[str, str]] | None:
        shown = kv_rows(d)
        ok = (
            "dash-kv:000" not in shown and "dash-kv:999" in shown and shown.get("dash-kv:050", {}).get("version") == "2"
        )
        return shown if ok else None

    shown = wait_until(browser, "the update, the new key and the delete", changed)
    assert sorted(shown) == [*names[1:], "dash-kv:999"] and "other:2" not in shown
    assert shown["dash-kv:050"]["modRevision"] == str(updated["revision"])
    cell = browser.find_element("css selector", '#kv-body tr[data-key="dash-kv:050"] td.value')
    text = cell.get_attribute("textContent")
    assert text.startswith('"xxx') and text.endswith("…") and len(text) == 80, text
    assert cell.get_attribute("title") == '"' + "x" * 300 + '"'  # the whole value, up to 2000 characters
    events = rows(browser, "#kv-events li[data-key]")
    assert [(e["type"], e["key"]) for e in events[:3]] == [
        ("delete", "dash-kv:000"),
        ("put", "dash-kv:999"),
        ("put", "dash-kv:050"),
    ]
    assert all(e["key"].startswith("dash-kv:") for e in events)

    # The per-node KV counters: every node at the last revision, the watch open on the page's node.
    def counters(d: Any) -> list[dict[str, str]] | None:
        nodes = rows(d, "#kv-nodes-body tr[data-node-id]")
        ok = len(nodes) == 3 and all(int(n.get("revision") or 0) >= last["revision"] for n in nodes)
        return nodes if ok and {n["nodeId"]: n["watchers"] for n in nodes}[page_node] == "1" else None

    wait_until(browser, "every node's KV revision, and the page's watch counted on its node", counters)

    # Another prefix: only its keys, and a new one of it arrives live.
    show_prefix(browser, "other:")
    wait_until(browser, "the keys of other:", lambda d: sorted(kv_rows(d)) == ["other:1", "other:2"])
    assert post(writer + "/kv/put", {"key": "other:3", "value": 3})[0] == 200
    wait_until(browser, "other:3, live", lambda d: sorted(kv_rows(d)) == ["other:1", "other:2", "other:3"])
    assert not browser.find_element("id", "kv-more").is_displayed()


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
                    {"name": "ops", "token": ops, "grants": ["admin", "kv:read:dash-kv:*"]},
                    {"name": "orders", "token": orders, "grants": ["locks:*", "kv:*"]},
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

    # The KV section: every key is outside the token's grants (403 shown); its prefix is not, and a watch
    # follows it with a long poll (an EventSource cannot send the token).
    wait_until(browser, "the KV section's 403", lambda d: "forbidden" in d.find_element("id", "kv-error").text)
    s, put = call(
        "POST", page + "/kv/put", {"key": "dash-kv:a", "value": 1}, headers={"Authorization": "Bearer " + orders}
    )
    assert s == 200, put
    show_prefix(browser, "dash-kv:")
    wait_until(browser, "dash-kv:a", lambda d: sorted(kv_rows(d)) == ["dash-kv:a"])
    assert not browser.find_element("id", "kv-error").is_displayed()
    wait_until(
        browser,
        "a long-poll watch",
        lambda d: "long poll" in (d.find_element("id", "kv-watch").get_attribute("title") or ""),
    )
    s, put = call(
        "POST", page + "/kv/put", {"key": "dash-kv:b", "value": 2}, headers={"Authorization": "Bearer " + orders}
    )
    assert s == 200, put
    wait_until(browser, "dash-kv:b, live", lambda d: sorted(kv_rows(d)) == ["dash-kv:a", "dash-kv:b"])
    row = kv_rows(browser)["dash-kv:b"]
    assert row["modRevision"] == str(put["revision"])
