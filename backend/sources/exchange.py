"""``exchange:<id>``: live trades from any exchange ccxt streams (``watch_trades``), with no holes in the candles.

ccxt speaks the exchanges; this module maps them onto the pipeline:

- the exchange: :mod:`backend.sources.ccxt_exchange` (ccxt.pro, guarded against bad frames);
- symbols and trades: :mod:`backend.sources.ccxt_trades` (pure);
- bad input: an undecodable frame, a message ccxt cannot parse, a trade with a
  missing or bad field is counted by reason and skipped; the feed stays up;
- disconnects: a dropped connection, or a feed silent for ``silence_s``,
  counts as disconnected; it reconnects with exponential backoff and jitter.
  While it is away the source is not ``live``, so no candle closes on the wall
  clock over trades that have not arrived yet;
- backfill (:mod:`backend.sources.backfill`): on first start the last
  ``history_s`` of the exchange's 1m candles and the forming minute's trades;
  after a reconnect the trades missed meanwhile (or, for a long gap, the 1m
  candles), deduplicated by trade id against what the feed delivered. It starts
  with the first trade after the (re)connect, or ``QUIET_BACKFILL_S`` after the
  connections are open and subscribed when no trade comes (a quiet market must
  not wait for its next trade to get its past, nor stay "disconnected"). A fill
  that finds no missed trade marks the market quiet: silence no longer drops the
  connection until a message comes (no REST round per symbol every ``silence_s``).

ccxt.pro is asyncio; its loop runs on a thread of its own and hands batches to
the ingest's synchronous loop through a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from backend.backoff import Backoff
from backend.config import INTERVALS_MS
from backend.models import Candle, Rejects, TradeBatch, now_ms
from backend.sources import SourceOptions
from backend.sources.backfill import BASE_MS, RestBackfill, rollup
from backend.sources.ccxt_exchange import make_exchange
from backend.sources.ccxt_trades import SeenIds, joined, symbol_table, trades_batch

log = logging.getLogger(__name__)

LIVE_LAG_MS = 60_000  # trades arriving later than this after they happened: not a live feed
IDLE_S = 0.05  # an empty batch at least this often while waiting (the ingest runs its timers)
QUIET_BACKFILL_S = 1.0  # with every connection open and no trade for this long, fill the gaps anyway
REST_LAG_MS = 5_000  # a filled gap is complete up to the exchange's now less this (its REST may lag its trades)
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0  # reconnect delays double from the first to the cap, with jitter
ROLLUP_INTERVALS = tuple(iv for iv, ms in INTERVALS_MS.items() if ms >= BASE_MS)
Finals = list[tuple[str, dict[str, list[tuple[Candle, bool]]]]]


@dataclass
class FeedState:
    """What the System page shows of a feed (``feed`` in the ingest stats)."""

    exchange: str
    symbols: dict[str, str]
    state: str = "connecting"  # connecting | backfilling | connected | disconnected
    connected_since: int | None = None
    reconnects: int = 0
    disconnects: int = 0
    last_trade_ms: int | None = None
    last_message_at: int | None = None
    lag_ms: int | None = None  # arrival - trade time of the newest trade
    error: str = ""
    backfill_requests: int = 0
    backfill_candles: int = 0
    backfill_trades: int = 0


class ExchangeSource:
    """Trades of ``symbols`` from exchange ``exchange_id`` over ccxt.pro, backfilled over REST."""

    def __init__(
        self,
        exchange_id: str,
        symbols: Sequence[str],
        *,
        history_s: float = 86_400.0,
        silence_s: float = 30.0,
        urls: Mapping[str, str] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError(f"exchange:{exchange_id} needs symbols: --symbols BTCUSDT,ETHUSDT")
        self.rejects = Rejects()
        self.exchange_id = exchange_id
        self.exchange = make_exchange(exchange_id, self.rejects, urls)  # fails now on an unknown id
        self._rest = RestBackfill(self.exchange, self.rejects)
        self.symbols = tuple(symbols)
        self.history_s = history_s
        self.silence_s = silence_s
        self.state = FeedState(exchange_id, {s: "" for s in self.symbols})
        self._out: queue.Queue[tuple[Finals, TradeBatch] | BaseException] = queue.Queue()
        self._finals: Finals = []
        self._seen = {s: SeenIds() for s in self.symbols}
        self._last_ts: dict[str, int] = {}  # newest trade delivered per symbol (where a gap starts)
        self._newest: dict[str, int] = {}  # newest trade received over the WebSocket per symbol
        self._gap: set[str] = set(self.symbols)  # symbols whose past must be fetched before their trades go out
        self._stop = threading.Event()
        self._resume_after: dict[str, tuple[int, int]] = {}  # restored candles hold trades up to these keys
        self._held: dict[str, list[TradeBatch]] = {}  # new trades of a symbol whose past is being fetched
        self._filler: asyncio.Task | None = None
        self._waiting: dict[str, bool] = dict.fromkeys(self.symbols, False)  # a watcher waits on ccxt now
        self._open_since: float | None = None  # loop time since every watcher waits on an open connection
        self._quiet = False  # the last gap fill found no trade, and none has come since: a quiet market
        self._logged: dict[str, tuple[int, int]] = {}  # reason → (count, minute) when last logged

    @property
    def live(self) -> bool:
        """Candles close on the wall clock only while every trade up to now has arrived, and arrives on time.

        A feed whose trades arrive more than ``LIVE_LAG_MS`` after they happened
        (a replay server, a clock far off) closes candles on event time only.
        """
        lag = self.state.lag_ms
        return self.state.state == "connected" and (lag is None or lag < LIVE_LAG_MS)

    def continue_after(self, after: Mapping[str, tuple[int, int]]) -> None:
        """Start from restored candles: fetch each symbol's trades after ``(ts, trade_id)``, not its history."""
        for symbol, key in after.items():
            if symbol in self._seen:
                self._last_ts[symbol] = key[0]
                self._resume_after[symbol] = key

    # ------------------------------------------------------------ the ingest's side (synchronous)

    def batches(self, stop: threading.Event) -> Iterator[TradeBatch]:
        """Batches as they arrive, an empty one at least every ``IDLE_S``; until ``stop``."""
        thread = threading.Thread(target=self._thread, name=f"feed-{self.exchange_id}", daemon=True)
        thread.start()
        try:
            while not stop.is_set():
                try:
                    item = self._out.get(timeout=IDLE_S)
                except queue.Empty:
                    yield TradeBatch.empty()
                    continue
                if isinstance(item, BaseException):
                    raise item
                self._finals.extend(item[0])
                yield item[1]
        finally:
            self._stop.set()
            thread.join(timeout=10)

    def take_finals(self) -> Finals:
        """The exchange's own candles that arrived with the next batch (apply them before its trades)."""
        out, self._finals = self._finals, []
        return out

    def stats(self) -> dict[str, Any]:
        self.state.backfill_requests = self._rest.requests
        return {"feed": asdict(self.state)}

    # ------------------------------------------------------------ the feed's side (asyncio, own thread)

    def _thread(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # (handed to the ingest, which reports it)
            self._out.put(exc)

    async def _main(self) -> None:
        ex = self.exchange
        try:
            await self._load_markets()
            tasks = [asyncio.create_task(self._watch(s)) for s in self.symbols]
            while not self._stop.is_set():
                await asyncio.sleep(IDLE_S)
                await self._check_silence()
                self._fill_when_quiet()
                self._log_rejects()
                for t in [*tasks, self._filler]:
                    if t is not None and t.done() and not t.cancelled() and t.exception():
                        raise t.exception()  # type: ignore[misc]  # a bug: the ingest reports it
            tasks += [self._filler] if self._filler else []
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                await ex.close()

    async def _load_markets(self) -> None:
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while not self._stop.is_set():
            try:
                await self.exchange.load_markets()
                break
            except Exception as exc:  # (network or exchange error: retry)
                self.state.error = f"markets: {exc}"[:300]
                await asyncio.sleep(backoff.next_delay())
        table = symbol_table(self.exchange.markets)
        missing = [s for s in self.symbols if s not in table]
        if missing:
            raise ValueError(
                f"{self.exchange_id} has no market {', '.join(missing)}: "
                f"`python -m backend feeds --exchange {self.exchange_id}` lists its symbols"
            )
        self.state.symbols = {s: table[s] for s in self.symbols}
        self.state.error = ""

    async def _watch(self, symbol: str) -> None:
        """One symbol: watch its trades, recover from every disconnect, fill every gap first."""
        import ccxt

        unified = self.state.symbols[symbol]
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        while not self._stop.is_set():
            try:
                self._waiting[symbol] = True
                async with asyncio.timeout(max(self.silence_s, IDLE_S)):
                    trades = await self.exchange.watch_trades(unified)
            except TimeoutError:
                continue  # a quiet symbol; the whole feed's silence is judged in _check_silence
            except asyncio.CancelledError:
                self._waiting[symbol] = False
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we are stopping
                if self.state.state != "disconnected":  # ccxt cancels a waiting watch when its client closes
                    self._down("connection closed")
                await asyncio.sleep(backoff.next_delay())
                continue
            except (ccxt.BaseError, OSError) as exc:
                self._waiting[symbol] = False
                self._down(str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.state.last_message_at = now_ms()
            self._quiet = False
            batch = trades_batch(trades, symbol, self.rejects, self._seen[symbol])  # first: its ids are seen
            if len(batch):
                self._newest[symbol] = int(batch.ts.max())
            if symbol in self._gap:
                self._held.setdefault(symbol, []).append(batch)  # goes out after the symbol's past
            else:
                self._emit(symbol, [], batch)
            self._start_filler()
            self._up()

    def _start_filler(self) -> None:
        """Fill the gaps on a task of its own: a watcher must wait on ccxt again at once, or trades that
        arrive meanwhile stay in ccxt's cache until the next message (forever, on a quiet market)."""
        filler = self._filler
        if filler is not None and filler.done() and not filler.cancelled() and filler.exception():
            return  # a bug: kept for _main to raise, not replaced by a new filler that hides it
        if self._gap and (filler is None or filler.done()):
            self._filler = asyncio.create_task(self._fill_gaps())

    def _fill_when_quiet(self) -> None:
        """Fill the gaps once every watcher has waited ``QUIET_BACKFILL_S`` on an open connection.

        By then every subscription has been sent, so the exchange's REST answer and the
        stream overlap (trade ids dedupe the overlap) and nothing falls between them.
        """
        clients = list((self.exchange.clients or {}).values())
        ready = (
            bool(clients)
            and all(self._waiting.values())
            and all(c.connected.done() and not c.connected.cancelled() and not c.closed() for c in clients)
            and all(c.connected.exception() is None for c in clients)
        )
        now = asyncio.get_running_loop().time()
        if not ready:
            self._open_since = None
        elif self._open_since is None:
            self._open_since = now
        elif now - self._open_since >= QUIET_BACKFILL_S:
            self._start_filler()

    async def _fill_gaps(self) -> None:
        """Every symbol's missed past, then what its watcher held meanwhile, before its new trades go out."""
        import ccxt

        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S)
        found = 0
        while self._gap and not self._stop.is_set():
            self.state.state = "backfilling"
            symbol = min(self._gap)
            try:
                finals, past, now = await self._backfill(symbol, self.state.symbols[symbol])
            except (ccxt.BaseError, OSError) as exc:
                self.state.error = f"backfill: {exc}"[:300]
                await asyncio.sleep(backoff.next_delay())
                continue
            # one batch: a trade the stream delivered while REST was asked comes in (ts, id) order with
            # the later ones REST already had
            batch = joined([past, *self._held.pop(symbol, [])])
            found += len(batch) + len(finals)
            self._emit(symbol, finals, batch)
            # the symbol is complete up to now: its next gap is fetched from there, not from its last trade,
            # which on a quiet market may be hours back (an hour of Binance trades per request)
            self._last_ts[symbol] = max(self._last_ts.get(symbol, 0), now - REST_LAG_MS)
            self._gap.discard(symbol)
        self._quiet = found == 0
        self._up()

    async def _feed_now(self) -> int:
        """The exchange's now: its clock (``fetch_time``; the machine's where it has none), or its newest trade
        when that is later (a clock behind). Not the newest trade alone: on a quiet market that is long past,
        and a gap filled up to it would stop short (Binance pages trades an hour at a time up to it)."""
        return max([await self._rest.clock(), *self._newest.values()])

    def _emit(self, symbol: str, finals: Finals, batch: TradeBatch) -> None:
        if len(batch):
            last = int(batch.ts.max())
            self._last_ts[symbol] = max(self._last_ts.get(symbol, last), last)
            self.state.last_trade_ms = max(self.state.last_trade_ms or 0, last)
            self.state.lag_ms = now_ms() - last
        if finals or len(batch):
            self._out.put((finals, batch))

    async def _backfill(self, symbol: str, unified: str) -> tuple[Finals, TradeBatch, int]:
        """What the pipeline missed before this symbol's first trades (or since its last one), and the
        exchange's now it was fetched up to."""
        rest = self._rest
        now = await self._feed_now()
        minute = now - now % BASE_MS
        since = self._last_ts.get(symbol)
        finals: Finals = []
        if since is not None:
            trades = await rest.trades(unified, since, now)
            if trades is not None:
                self.state.backfill_trades += len(trades)
                past = trades_batch(trades, symbol, self.rejects, self._seen[symbol])
                return finals, _after(past, self._resume_after.pop(symbol, None)), now
            start = since - since % max(INTERVALS_MS[iv] for iv in ROLLUP_INTERVALS)  # every period from its start
        elif self.history_s > 0:
            start = int(now - self.history_s * 1000)
        else:
            return finals, TradeBatch.empty(), now
        candles = await rest.candles(unified, symbol, start, minute)
        self.state.backfill_candles += len(candles)
        if candles:
            finals.append((symbol, {iv: rollup(candles, iv, INTERVALS_MS[iv]) for iv in ROLLUP_INTERVALS}))
        if not self.exchange.has.get("fetchTrades"):
            return finals, TradeBatch.empty(), now
        trades = await rest.trades(unified, minute, now) or []
        self.state.backfill_trades += len(trades)
        return finals, trades_batch(trades, symbol, self.rejects, self._seen[symbol]), now

    def _down(self, reason: str) -> None:
        if self.state.state in ("connected", "backfilling"):
            self.state.disconnects += 1
            log.warning("%s feed disconnected: %s", self.exchange_id, reason)
        self.state.state = "disconnected"
        self.state.error = reason[:300]
        self.state.connected_since = None
        self._gap.update(s for s in self.symbols if s in self._last_ts)

    def _up(self) -> None:
        if self.state.state != "connected" and not self._gap:
            if self.state.disconnects > self.state.reconnects:
                self.state.reconnects += 1
            self.state.state = "connected"
            self.state.connected_since = now_ms()
            self.state.error = ""

    def _log_rejects(self) -> None:
        """Log bad input once per reason and minute, with the totals (DESIGN "Trades")."""
        minute = now_ms() // 60_000
        for reason, n in self.rejects.counts.items():
            last_n, last_minute = self._logged.get(reason, (0, -1))
            if n != last_n and minute != last_minute:
                self._logged[reason] = (n, minute)
                log.warning("%s feed: rejected %s; totals so far: %s", self.exchange_id, reason, self.rejects.summary())

    async def _check_silence(self) -> None:
        """A feed with no message for ``silence_s`` is down: drop its connections so the watchers reconnect."""
        # a quiet market's reconnect brings no message: silence counts from the reconnect then; and once a
        # gap fill has found the exchange without a trade the stream missed, the market is quiet, not the stream
        # stalled: no more reconnects (each a REST round per symbol) until a message comes
        last = max(self.state.last_message_at or 0, self.state.connected_since or 0) or None
        if self._quiet or self.state.state != "connected" or last is None or now_ms() - last < self.silence_s * 1000:
            return
        self._down(f"no message for {self.silence_s:g} s")
        for client in list(self.exchange.clients.values()):
            with contextlib.suppress(Exception):
                await client.close()


def _after(batch: TradeBatch, key: tuple[int, int] | None) -> TradeBatch:
    """The trades of ``batch`` after ``key`` = ``(ts, trade_id)`` (those restored candles do not hold yet)."""
    if key is None or not len(batch):
        return batch
    ts, tid = key
    return batch.take((batch.ts > ts) | ((batch.ts == ts) & (batch.trade_id > tid)))


def open_spec(arg: str, options: SourceOptions) -> ExchangeSource:
    """``exchange:<ccxt id>``, e.g. ``exchange:binance``, for ``symbols``."""
    name = arg.strip().lower()
    if not name:
        raise ValueError("exchange needs a ccxt id, e.g. exchange:binance (`python -m backend feeds` lists them)")
    return ExchangeSource(
        name,
        options.symbols or (),
        history_s=options.backfill_s,
        silence_s=options.silence_s,
        urls=options.exchange_urls,
    )
