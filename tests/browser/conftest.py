"""The browser tests' fixtures: the real stack (own Valkey, seeded history), the app, headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.browser import CHROME_FLAGS
from tests.browser.chromium import SYMBOLS
from tests.dashboard_fixtures import CHROMIUM, StreamlitApp, browser_required, seed_history
from tests.stack import Server, start_stack


@pytest.fixture(scope="session", autouse=True)
def chromium_present() -> None:
    """No Chromium: skip here (saying how to get it), fail in CI, where a skip would hide every browser test."""
    if CHROMIUM is None:
        why = "no Chromium on PATH (chromium) or at a known path: apt-get install -y chromium"
        if browser_required():
            pytest.fail(f"{why} (required: CI or CANDLES_TEST_REQUIRE_BROWSER is set)", pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real stack on its own Valkey, with some recent history so the charts look like a day's work."""
    from backend.embedded import EmbeddedValkey

    valkey = EmbeddedValkey()
    seed_history(valkey.url, SYMBOLS, {"1s": 300, "1m": 240, "1h": 30})
    server = start_stack(
        {"CANDLES_REDIS_URL": valkey.url}, symbols=SYMBOLS, data_dir=tmp_path_factory.mktemp("browser-stack")
    )
    yield server
    server.stop()
    valkey.stop()


@pytest.fixture(scope="module")
def app(stack: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitApp]:
    streamlit = StreamlitApp(stack.url, log_dir=tmp_path_factory.mktemp("streamlit"))
    yield streamlit
    streamlit.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    pg = context.new_page()
    yield pg
    context.close()
