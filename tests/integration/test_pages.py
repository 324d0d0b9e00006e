"""Each page with ``streamlit.testing.v1.AppTest`` against a real backend (``python -m backend run``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.stack import ROOT, Server, free_port, start_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_stack(symbols=("BTCUSDT", "ETHUSDT"), data_dir=tmp_path_factory.mktemp("pages-stack"))
    yield server
    server.stop()


def use_relay(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("CANDLES_RELAY_URL", url)
    monkeypatch.setenv("CANDLES_AUTOSTART", "0")


@pytest.fixture(autouse=True)
def _fresh_runtime() -> Iterator[None]:
    yield
    st.cache_resource.clear()  # stops the listener threads of this test's runtime
    st.cache_data.clear()


def app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for k, v in params.items():
        at.query_params[k] = v
    if page:
        at.switch_page(page)
    return at


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def run_until(at: AppTest, check, tries: int = 20) -> AppTest:
    """Rerun (as the live fragment would) until ``check(at)`` holds; no exception on any run."""
    for _ in range(tries):
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if check(at):
            return at
        time.sleep(0.5)
    raise AssertionError(f"page never got there:\n{markdown_text(at)[:2000]}")


def tiles_text(at: AppTest) -> str:
    """The overview's tiles, as the tiles component was last sent them whole."""
    sent = [json.loads(el.proto.bytes) for el in at.get("bidi_component") if el.proto.component_name.endswith("cells")]
    return "\n".join(cell for body in sent for cell in body.get("cells", []))


def test_overview_shows_a_live_tile_per_symbol(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_relay(monkeypatch, stack.url)
    monkeypatch.setenv("CANDLES_UI_DELTA", "0")  # the whole tiles every run (this session never asks for them)

    def tiles_have_prices(at: AppTest) -> bool:
        text = tiles_text(at)
        loading = 'class="cs-price cs-muted"' in text  # a tile whose books are still loading
        return "cs-tile" in text and 'data-testid="tile-price">&#8212;' not in text and not loading

    at = run_until(app(), tiles_have_prices)
    text = tiles_text(at)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert f'data-symbol="{symbol}"' in text and f'href="candles?symbol={symbol}"' in text
    assert "<b>Live</b>" in markdown_text(at) and "feed latency" in markdown_text(at)
    assert not at.error


def test_candles_page_follows_and_writes_the_query_parameters(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_relay(monkeypatch, stack.url)
    at = app("pages/candles.py", symbol="ETHUSDT", interval="1s", ind="ema20,rsi14", tz="local")
    at = run_until(at, lambda at: 'data-testid="last-price"' in markdown_text(at))
    assert at.selectbox[0].value == "ETHUSDT"
    assert at.multiselect[0].value == ["ema20", "rsi14"]
    assert at.query_params["interval"] == "1s" and at.query_params["tz"] == "local"
    assert "ETH/USDT" in markdown_text(at)
    chart = [el for el in at.main if getattr(el, "type", "") == "bidi_component" or "bidi" in str(type(el)).lower()]
    assert chart or "candlestream_plot" in str(at.main), "the live chart is on the page"

    at.selectbox[0].set_value("BTCUSDT").run()
    assert not at.exception
    assert at.query_params["symbol"] == "BTCUSDT"
    at.multiselect[0].set_value(["vwap"]).run()
    assert at.query_params["ind"] == "vwap"


def test_unknown_query_values_fall_back_to_defaults(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_relay(monkeypatch, stack.url)
    at = run_until(
        app("pages/candles.py", symbol="NOPE", interval="7m", bars="12"),
        lambda at: 'data-testid="last-price"' in markdown_text(at),  # the chart of the fallback stream has data
    )
    assert at.selectbox[0].value == "BTCUSDT"  # the relay's first symbol
    assert at.query_params["interval"] == "1m" and "bars" not in at.query_params
    shown = f"Showing **{at.selectbox[0].value[:3]}/USDT 1m** instead."
    [warning] = [w.value for w in at.warning]  # the link says what it asked for, why not, and what is shown
    assert warning.startswith("The link asked for **NOPE** · **7m** · **bars=12**, which can't be shown: ")
    assert "the relay carries no NOPE (it carries BTC/USDT, ETH/USDT)" in warning and warning.endswith(shown)


def test_a_refused_comparison_link_names_what_is_compared(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_relay(monkeypatch, stack.url)
    at = run_until(app("pages/candles.py", view="compare", cmp="ethusdt,NOPE"), lambda at: True)
    [warning] = [w.value for w in at.warning]
    assert warning.startswith("The link asked for **NOPE**, which can't be shown: the relay carries no NOPE ")
    assert warning.endswith("Showing **ETH/USDT compared at 1m** instead.")
    assert at.multiselect[0].value == ["ETHUSDT"] and at.query_params["cmp"] == "ETHUSDT"


def test_older_history_loads_on_demand(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_relay(monkeypatch, stack.url)
    # the simulator's two hours of history go into SQL in the background: the page asks for the 500 candles before
    # its first bar (100 s back), so wait until SQL holds every 1s candle of the 600 s before the last 50 s (under
    # load, the 500 oldest were there long before the newest, and the page got only 366)
    now = int(time.time() * 1000)
    end = now - now % 1000 - 50_000
    history = {"interval": "1s", "limit": 600, "start": end - 600_000, "end": end}
    stack.wait_until(lambda: stack.get("/api/v1/history/BTCUSDT", params=history).json()["count"] == 600,
                     what="every 1s candle of ten minutes in SQL history")  # fmt: skip
    at = run_until(app("pages/candles.py", symbol="BTCUSDT", interval="1s", bars="100"),
                   lambda at: any(b.label == "Load older history" for b in at.button))  # fmt: skip
    assert any("History is stored from" in c.value for c in at.caption)  # offered because SQL has older candles
    next(b for b in at.button if b.label == "Load older history").click().run()
    assert not at.exception
    assert any("including 500 older candles loaded from history" in c.value for c in at.caption), [
        c.value for c in at.caption
    ]


def test_a_page_opens_at_its_own_path_and_an_unknown_path_at_the_overview() -> None:
    """What ``app.py`` tells Streamlit before it resolves a URL (the browser tests open the real URLs)."""
    from services.ui.routes import route

    paths = ("overview", "candles", "alerts", "system")
    assert [route(p, paths, "overview").page for p in paths] == ["", "candles", "alerts", "system"]


def test_system_page_shows_pipeline_relay_and_listener(stack: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    use_relay(monkeypatch, stack.url)
    at = run_until(app("pages/system.py"), lambda at: any(m.label == "Trades/s" for m in at.metric))
    labels = {m.label for m in at.metric}
    assert {"Trades/s", "Connections", "Listener", "Sessions", "Redis", "Database"} <= labels
    assert next(m for m in at.metric if m.label == "Listener").value == "LIVE"
    assert next(m for m in at.metric if m.label == "Source").value == "simulator"


@pytest.mark.parametrize("page", [None, "pages/candles.py", "pages/system.py"])
def test_every_page_says_plainly_when_the_relay_is_down(monkeypatch: pytest.MonkeyPatch, page: str | None) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    use_relay(monkeypatch, url)
    at = run_until(app(page), lambda at: any("is not answering" in e.value for e in at.error))
    assert any(url in e.value and "reconnects" in e.value for e in at.error)
    assert not at.exception


def test_relay_url_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from services.settings import ui_settings

    s = ui_settings({"CANDLES_RELAY_URL": "http://10.0.0.5:9000/", "CANDLES_UI_REFRESH_S": "0.5"})
    assert (s.relay_url, s.refresh_s, s.autostart) == ("http://10.0.0.5:9000", 0.5, True)
    bad = ui_settings({"CANDLES_UI_REFRESH_S": "fast", "CANDLES_AUTOSTART": "0"})
    assert bad.refresh_s == 1.0 and "CANDLES_UI_REFRESH_S" in (bad.error or "") and not bad.autostart
    assert os.environ.get("CANDLES_RELAY_URL") != "http://10.0.0.5:9000"
