"""``/ws/test`` in a browser: ticking a symbol while connected (un)subscribes at once; the relay's Redis is shown."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from backend.config import Settings
from backend.models import now_ms
from tests.browser.chromium import shot
from tests.stack import Publisher, Server, isolated_settings, make_candle, start_relay

pytestmark = pytest.mark.browser
SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")


@pytest.fixture(scope="module")
def relay_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(redis_url, tmp_path_factory.mktemp("wstest"))


@pytest.fixture(scope="module")
def relay(relay_settings: Settings) -> Iterator[Server]:
    with start_relay(relay_settings, log_dir=relay_settings.data_dir) as server:
        yield server


@pytest.fixture
def ticking(relay_settings: Settings) -> Iterator[None]:
    """Every symbol gets a 1m update every 50 ms until the test ends."""
    stop = threading.Event()
    publisher = Publisher(relay_settings)

    def run() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            minute = now_ms() // 60_000 * 60_000
            publisher.publish(*(make_candle(s, "1m", minute, seq=seq, close=100.0 + seq % 7) for s in SYMBOLS))
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()
    publisher.close()


def rows(page: Any) -> list[str]:
    return sorted(page.locator("#rows tr td:first-child").all_inner_texts())


def test_ticking_a_symbol_while_connected_subscribes_at_once(relay: Server, page: Any, ticking: None) -> None:
    page.goto(relay.url + "/ws/test")
    page.wait_for_selector("#symbols input[value='AAAUSDT']")
    for box in page.locator("#intervals input").all():  # 1m only
        if box.get_attribute("value") != "1m" and box.is_checked():
            box.uncheck()
        elif box.get_attribute("value") == "1m" and not box.is_checked():
            box.check()
    page.locator("#symbols input[value='CCCUSDT']").uncheck()
    page.click("#connect")
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 2")
    assert rows(page) == ["AAAUSDT:1m", "BBBUSDT:1m"]
    assert page.locator("[data-testid=redis-state]").inner_text().startswith("connected (0 reconnects")

    page.locator("#symbols input[value='CCCUSDT']").check()  # no reconnect: subscribed live
    page.wait_for_function("document.querySelectorAll('#rows tr').length === 3")
    page.locator("#symbols input[value='AAAUSDT']").uncheck()
    page.wait_for_function("document.getElementById('streams').textContent === 'BBBUSDT:1m, CCCUSDT:1m'")
    assert rows(page) == ["BBBUSDT:1m", "CCCUSDT:1m"]
    assert page.locator("#status").inner_text() == "connected"
    assert relay.stats()["connections"] == 1
    shot(page, "ws-test-live-subscribe")
