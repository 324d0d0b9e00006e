"""Local exchanges replaying real WebSocket captures, for ccxt to talk to (no internet).

:class:`ExchangeServer` is Binance USDⓈ-M futures; one aiohttp server answers both sides ccxt uses:
- WebSocket ``/ws/…``, ``/market/ws/…``: after a ``SUBSCRIBE``, the capture's
  ``aggTrade`` events of the subscribed streams at their recorded arrival times
  (``speed`` scales them), raw as Binance sends them on a ``/ws`` connection; a
  connection gets the events that happen after it subscribed (what happens while
  a client is away is lost to it, as on the real exchange); the server can drop
  the connection after a given number of events, go quiet after a given number
  (the stream sends no more trades; REST and the clock go on) and inject raw frames;
- REST ``/fapi/v1/exchangeInfo``, ``/fapi/v1/aggTrades`` (the events that have
  happened by now on the replay clock, by ``startTime``/``endTime``/``fromId``),
  ``/fapi/v1/klines`` (the newest ``@kline_1m`` state of each minute by now) and
  ``/fapi/v1/time`` (the replay clock).

:class:`CoinbaseServer` is the Coinbase Exchange feed: ``match`` messages of
the subscribed products, ``/products`` and ``/currencies``.

Nothing here aggregates: it only serves the captures' own messages.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class Capture:
    """A capture's received messages in arrival order: ``(arrival s, message)``; sent lines (``<-``) are left out."""

    messages: list[tuple[float, dict[str, Any]]]

    @classmethod
    def read(cls, path: Path) -> Capture:
        out = []
        for line in path.read_text().splitlines()[1:]:
            stamp, _, text = line.partition(": ")
            if not text or " " in stamp:  # a blank line, or "wss://… <- 1618677817.02": what the recorder sent
                continue
            out.append((float(stamp), json.loads(text)))
        return cls(out)

    def of(self, kind: str, symbols: set[str] | None = None) -> list[tuple[float, str, dict[str, Any]]]:
        """Binance combined-stream events of ``kind``: ``(arrival, stream, event)``."""
        return [
            (t, m["stream"], m["data"])
            for t, m in self.messages
            if "stream" in m and m["data"].get("e") == kind and (symbols is None or m["data"]["s"] in symbols)
        ]

    def matches(self, products: set[str]) -> list[tuple[float, dict[str, Any]]]:
        """Coinbase ``match`` messages of ``products``."""
        return [(t, m) for t, m in self.messages if m.get("type") == "match" and m["product_id"] in products]


@dataclass
class ReplayServer:
    """The replay clock, subscriptions and the sender that every flavour shares."""

    capture: Capture
    symbols: set[str]
    speed: float = 1.0
    drop_after: int | None = None  # close the WebSocket after this many trade events (once)
    quiet_after: int | None = None  # send no trade event after this many (the REST side goes on)
    inject: dict[int, list[str]] = field(default_factory=dict)  # after the n-th trade event, these raw frames
    offset_s: float = 0.0  # the replay clock starts this far into the capture (as if it had been running)
    port: int = 0
    connections: int = 0
    sent: int = 0
    requests: list[str] = field(default_factory=list)
    _t0: float | None = None
    _subscribed: set[str] = field(default_factory=set)
    _playing: asyncio.Event = field(default_factory=asyncio.Event)

    def trade_frames(self) -> list[tuple[float, str, str]]:
        """``(arrival, subscription key, frame text)`` of every trade message, in arrival order."""
        raise NotImplementedError

    def subscribed(self, body: dict[str, Any]) -> tuple[set[str], dict[str, Any]] | None:
        """The keys a client message subscribes to and the answer, or None when it is no subscription."""
        raise NotImplementedError

    def app(self) -> web.Application:
        """The exchange's routes: its WebSocket and the REST endpoints ccxt calls."""
        raise NotImplementedError

    def urls(self) -> dict[str, str]:
        """What :func:`backend.sources.ccxt_exchange.make_exchange` needs to talk to this server."""
        raise NotImplementedError

    # ------------------------------------------------------------ replay clock

    def _clock(self) -> float:
        """Capture time (s) now on the replay clock; it starts once every symbol is subscribed."""
        first = self.capture.messages[0][0]
        return first if self._t0 is None else first + (time.monotonic() - self._t0) * self.speed

    def _due(self, arrival: float) -> float:
        assert self._t0 is not None
        return self._t0 + (arrival - self.capture.messages[0][0]) / self.speed

    # ------------------------------------------------------------ WebSocket

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        streams: dict[str, float] = {}  # subscription key → when it was subscribed (monotonic)
        sender: asyncio.Task | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            sub = self.subscribed(json.loads(msg.data))
            if sub is None:
                continue
            streams.update(dict.fromkeys(sub[0] - streams.keys(), time.monotonic()))
            self._subscribed.update(sub[0])
            await ws.send_str(json.dumps(sub[1]))
            if self._t0 is None and self._subscribed >= {key for _, key, _ in self.trade_frames()}:
                self._t0 = time.monotonic() - self.offset_s / self.speed  # every symbol is listening: play
                self._playing.set()
            if sender is None:
                sender = asyncio.create_task(self._send(ws, streams))
        if sender is not None:
            sender.cancel()
        return ws

    async def _send(self, ws: web.WebSocketResponse, streams: dict[str, float]) -> None:
        await self._playing.wait()  # the replay starts when every symbol has been subscribed
        for arrival, key, text in self.trade_frames():
            due = self._due(arrival)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # what happened before the connection subscribed is not sent (a client joining late gets what
            # happens from then on, as on a real exchange); judged by the subscription's time, not by when
            # this task got to run, so a busy machine delays frames but never drops them
            if streams.get(key, due + 1) > due:
                continue
            if self.quiet_after is not None and self.sent >= self.quiet_after:
                return
            await ws.send_str(text)
            self.sent += 1
            for raw in self.inject.get(self.sent, ()):
                await ws.send_str(raw)
            if self.drop_after is not None and self.sent == self.drop_after:
                self.drop_after = None
                await ws.close()
                return


@dataclass
class ExchangeServer(ReplayServer):
    """Binance: USDⓈ-M futures (``binanceusdm``, ``market="usdm"``) or spot (``binance``, ``market="spot"``):
    aggTrade streams, exchangeInfo, aggTrades, klines."""

    market: str = "usdm"
    # rows added to a symbol's klines answer (a row with a real row's open time replaces it): bad input
    kline_patch: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def rest(self) -> str:
        return "/fapi/v1" if self.market == "usdm" else "/api/v3"

    def trade_frames(self) -> list[tuple[float, str, str]]:
        return [
            (t, stream, json.dumps(e))  # raw events, as Binance sends them on a /ws connection
            for t, stream, e in self.capture.of("aggTrade", self.symbols)
        ]

    def subscribed(self, body: dict[str, Any]) -> tuple[set[str], dict[str, Any]] | None:
        if body.get("method") != "SUBSCRIBE":
            return None
        return set(body["params"]), {"result": None, "id": body["id"]}

    # ------------------------------------------------------------ REST

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        symbols = []
        for s in sorted(self.symbols):
            quote = next(q for q in ("USDT", "BTC", "ETH", "EUR") if s.endswith(q))
            entry = {"symbol": s, "status": "TRADING", "baseAsset": s[: -len(quote)], "quoteAsset": quote}
            if self.market == "usdm":
                entry |= {"pair": s, "contractType": "PERPETUAL", "marginAsset": quote}
            else:
                entry |= {"isSpotTradingAllowed": True, "permissions": ["SPOT"]}
            symbols.append(entry | {"filters": []})
        return web.json_response({"symbols": symbols})

    async def _agg_trades(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        q = request.query
        now = self._clock()
        start = int(q.get("startTime", 0))
        end = int(q.get("endTime", 1 << 62))
        limit = int(q.get("limit", 500))
        out = [
            e
            for arrival, _, e in self.capture.of("aggTrade", {q["symbol"]})
            if arrival <= now and start <= e["T"] <= end and e["a"] >= int(q.get("fromId", 0))
        ]
        rows = [{k: e[k] for k in ("a", "p", "q", "f", "l", "T", "m")} for e in out[:limit]]
        return web.json_response(rows)

    async def _time(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        return web.json_response({"serverTime": int(self._clock() * 1000)})

    async def _klines(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        q = request.query
        now = self._clock()
        latest: dict[int, dict[str, Any]] = {}
        for arrival, _, e in self.capture.of("kline", {q["symbol"]}):
            if arrival <= now:
                latest[e["k"]["t"]] = e["k"]
        start = int(q.get("startTime", 0))
        end = int(q.get("endTime", 1 << 62))
        patch = self.kline_patch.get(q["symbol"], [])
        replaced = {r[0] for r in patch if isinstance(r, list) and r}
        rows = [
            [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0"]
            for t, k in sorted(latest.items())
            if start <= t <= end and t not in replaced
        ]
        return web.json_response((rows + patch)[: int(q.get("limit", 500))])

    # ------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"{self.rest}/exchangeInfo", self._exchange_info)
        app.router.add_get(f"{self.rest}/aggTrades", self._agg_trades)
        app.router.add_get(f"{self.rest}/klines", self._klines)
        app.router.add_get(f"{self.rest}/time", self._time)
        app.router.add_get("/stream/{tail:.*}", self._ws)  # spot: ccxt keeps "/stream" to tell spot from futures
        app.router.add_get("/ws/{tail:.*}", self._ws)
        app.router.add_get("/market/ws/{tail:.*}", self._ws)  # ccxt dials aggTrade streams here
        return app

    def urls(self) -> dict[str, str]:
        """What :func:`backend.sources.ccxt_exchange.make_exchange` needs to talk to this server."""
        base = f"127.0.0.1:{self.port}"
        if self.market == "spot":
            return {"api.public": f"http://{base}/api/v3", "api.ws.spot": f"ws://{base}/stream/ws"}
        return {
            "api.fapiPublic": f"http://{base}/fapi/v1",
            "api.fapiPublicV2": f"http://{base}/fapi/v2",
            "api.ws.linear": f"ws://{base}/ws",
            "api.ws.future": f"ws://{base}/ws",  # the same, as ccxt before 4.5.7x names it
        }


@dataclass
class CoinbaseServer(ReplayServer):
    """Coinbase Exchange (``coinbaseexchange``): the ``matches`` channel, products and currencies."""

    def trade_frames(self) -> list[tuple[float, str, str]]:
        return [(t, m["product_id"], json.dumps(m)) for t, m in self.capture.matches(self.symbols)]

    def subscribed(self, body: dict[str, Any]) -> tuple[set[str], dict[str, Any]] | None:
        if body.get("type") != "subscribe":
            return None
        channels = [{"name": name, "product_ids": body["product_ids"]} for name in body["channels"]]
        return set(body["product_ids"]), {"type": "subscriptions", "channels": channels}

    async def _products(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        products = [
            {
                "id": p,
                "base_currency": p.split("-")[0],
                "quote_currency": p.split("-")[1],
                "base_increment": "0.001",
                "quote_increment": "0.00000001",
                "status": "online",
                "trading_disabled": False,
            }
            for p in sorted(self.symbols)
        ]
        return web.json_response(products)

    async def _currencies(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        return web.json_response([])

    async def _time(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        return web.json_response({"epoch": self._clock()})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/products", self._products)
        app.router.add_get("/currencies", self._currencies)
        app.router.add_get("/time", self._time)
        app.router.add_get("/ws", self._ws)
        return app

    def urls(self) -> dict[str, str]:
        return {"api.public": f"http://127.0.0.1:{self.port}", "api.ws": f"ws://127.0.0.1:{self.port}/ws"}


class RunningServer:
    """Runs a :class:`ReplayServer` on its own event loop thread on a free port."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.server.app())
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.server.port)
        self.loop.run_until_complete(site.start())
        self.server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.runner = runner
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        self.ready.wait(10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def main() -> None:
    """``python -m tests.exchange_server --port 18401``: serve the capture by hand (a demo without the internet)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--offset", type=float, default=0.0, help="start this many seconds into the capture")
    args = parser.parse_args()
    from tests.conftest import SAMPLES

    capture = Capture.read(SAMPLES / "ws_recordings" / "BINANCE_FUTURES.ws.1.0")
    symbols = {"SUSHIUSDT", "CTKUSDT", "AKROUSDT", "KEEPUSDT"}
    server = ExchangeServer(capture, symbols, speed=args.speed, offset_s=args.offset, port=args.port)
    with RunningServer(server) as running:
        print(f"CANDLES_EXCHANGE_URLS='{json.dumps(running.urls())}'", flush=True)
        print(f"CANDLES_SOURCE=exchange:binanceusdm CANDLES_SYMBOLS={','.join(sorted(symbols))}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
