"""A ccxt.pro exchange made safe for a feed: a bad frame or message is counted by reason, never the end of it.

What ``exchange:<id>`` accepts (:func:`usable_exchanges`), and one exchange of them with the options the feed
needs and its URLs pointed elsewhere when asked (:func:`make_exchange`). :mod:`backend.sources.exchange` runs
the feed on it; ``python -m backend feeds`` lists exchanges and their symbols with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.models import Rejects

# Binance's aggregate trades carry the raw trade count its klines count; its default stream is raw trades
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    name: {"watchTrades": {"name": "aggTrade"}, "watchTradesForSymbols": {"name": "aggTrade"}}
    for name in ("binance", "binanceus", "binanceusdm", "binancecoinm")
}


def usable_exchanges() -> list[str]:
    """ccxt exchange ids that stream trades and serve candles: what ``exchange:<id>`` accepts."""
    import ccxt.pro

    out = []
    for name in ccxt.pro.exchanges:
        has = getattr(ccxt.pro, name)().has  # no network: ``has`` is static
        if has.get("watchTrades") and has.get("fetchOHLCV"):
            out.append(name)
    return out


class _Guarded:
    """Mixed into a ccxt.pro exchange: a bad frame or message is counted and skipped.

    Why not leave it to ccxt: an exception while ccxt decodes or handles a frame
    ends its receive loop, so one bad message would silence the whole feed.
    """

    feed_rejects: Rejects

    def handle_message(self, client: Any, message: Any) -> None:
        try:
            super().handle_message(client, message)  # type: ignore[misc]
        except Exception:  # (any parse failure of the exchange's message)
            self.feed_rejects.add("unparseable_message")

    def client(self, url: str) -> Any:
        ws = super().client(url)  # type: ignore[misc]
        if not getattr(ws, "_candles_guarded", False):
            decode = ws.handle_text_or_binary_message

            def guarded(data: Any) -> None:
                try:
                    decode(data)
                except ValueError:  # not JSON
                    self.feed_rejects.add("bad_json")

            ws.handle_text_or_binary_message = guarded
            ws._candles_guarded = True
        return ws


def make_exchange(exchange_id: str, rejects: Rejects, urls: Mapping[str, str] | None = None) -> Any:
    """A ccxt.pro exchange counting bad input into ``rejects``; ``urls`` overrides ccxt's ``urls`` entries.

    ``urls`` keys are dotted paths into ccxt's ``urls`` dict, e.g. ``api.ws.spot``
    or ``api.public`` (a testnet, a proxy, the tests' local servers).
    """
    import ccxt.pro

    base = getattr(ccxt.pro, exchange_id, None)
    if base is None or exchange_id not in ccxt.pro.exchanges:
        raise ValueError(f"unknown exchange {exchange_id!r}: `python -m backend feeds` lists them")
    cls = type(f"Guarded{base.__name__}", (_Guarded, base), {})
    options = {"fetchMarkets": {"types": ["spot"]}} if exchange_id in ("binance", "binanceus") else {}
    options |= EXCHANGE_OPTIONS.get(exchange_id, {})
    ex = cls({"enableRateLimit": True, "options": options})
    ex.feed_rejects = rejects
    for path, url in (urls or {}).items():
        *parents, leaf = path.split(".")
        node = ex.urls
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = url
    return ex
