"""A synthetic market: several symbols trading at realistic prices with realistic texture.

Why these ingredients: candles and alerts are only exercised by data that
behaves like a market, so prices follow a random walk whose volatility
clusters (a slow log-volatility process per symbol plus a market-wide activity
factor), trades arrive in bursts (an activity process that mean-reverts, and a
calm/burst regime), prices sit on a tick grid, sizes are log-normal, and the
taker side leans with the move. Everything per trade is vectorised with numpy,
so :meth:`Simulator.generate` makes a million trades in a fraction of a second
(the benchmarks use it), and the live :meth:`Simulator.batches` runs the same
model on wall-clock ticks.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from backend.config import DEFAULT_SYMBOLS
from backend.models import Rejects, TradeBatch, normalize_symbol, now_ms
from backend.sources import ResumePoint, SourceOptions

# start price, annualised volatility, share of the trade flow
KNOWN_SYMBOLS: dict[str, tuple[float, float, float]] = {
    "BTCUSDT": (97_000.0, 0.50, 0.30),
    "ETHUSDT": (3_600.0, 0.65, 0.20),
    "SOLUSDT": (240.0, 0.90, 0.12),
    "BNBUSDT": (650.0, 0.55, 0.08),
    "XRPUSDT": (1.4, 0.90, 0.10),
    "DOGEUSDT": (0.4, 1.00, 0.08),
}
_UNKNOWN_VOL, _UNKNOWN_WEIGHT = 0.80, 0.05
_YEAR_S = 365.25 * 86_400
_MEDIAN_NOTIONAL = 250.0  # quote currency per trade; sizes are log-normal around it
_QTY_SIGMA = 1.3
_ACTIVITY_TAU_S, _ACTIVITY_SD = 60.0, 0.6  # market-wide log-activity (OU)
_VOL_TAU_S, _VOL_SD = 300.0, 0.45  # per-symbol log-volatility (OU)
_ACTIVITY_VOL_BETA = 0.5  # busy markets move more
_BURST_RATE, _BURST_VOL = 4.0, 1.8  # burst regime: trade-rate and volatility multipliers
_CALM_MEAN_S, _BURST_MEAN_S = 180.0, 20.0
_SIDE_NOISE = 1.0  # taker side = sign(return shock + noise): leans with the move
_BLOCK = 64  # AR(1) recursion is evaluated in blocks of this many steps
_GEN_BUCKET_MS = 100
RESUME_MIN_GAP_S = 60.0  # without history, a stop this short still continues the open candles (flat meanwhile)


def default_profile(symbol: str) -> tuple[float, float, float]:
    """(price, annual volatility, flow weight); unknown symbols get a stable plausible price."""
    if symbol in KNOWN_SYMBOLS:
        return KNOWN_SYMBOLS[symbol]
    u = (zlib.crc32(symbol.encode()) % 10_000) / 10_000
    return float(f"{10 ** (-1 + 4 * u):.4g}"), _UNKNOWN_VOL, _UNKNOWN_WEIGHT


def price_decimals(price: float) -> int:
    """Tick size as decimals: about 6 significant digits, at least cents (BTC 0.01, XRP 0.0001)."""
    return int(min(8, max(2, 4 - math.floor(math.log10(price)))))


def qty_decimals(price: float) -> int:
    """Lot size as decimals: one lot is worth about one unit of quote (BTC 0.00001, DOGE 1)."""
    return int(min(8, max(0, math.ceil(math.log10(price)))))


def _ar1(innov: np.ndarray, phi: float, x0: np.ndarray) -> np.ndarray:
    """``x[k] = phi * x[k-1] + innov[k]`` along axis 0, vectorised in blocks (no scipy needed)."""
    k, m = innov.shape
    if k <= 4:
        out = np.empty_like(innov)
        x = x0
        for i in range(k):
            x = phi * x + innov[i]
            out[i] = x
        return out
    pad = (-k) % _BLOCK
    e = np.concatenate([innov, np.zeros((pad, m))]).reshape(-1, _BLOCK, m)
    lag = np.arange(_BLOCK)[:, None] - np.arange(_BLOCK)[None, :]
    kernel = np.where(lag >= 0, phi ** np.maximum(lag, 0).astype(float), 0.0)
    out = kernel @ e  # each block's response to its own shocks
    carry_gain = (phi ** np.arange(1, _BLOCK + 1))[:, None]
    carry = x0
    for block in out:  # add the decayed state carried in from the previous block
        block += carry_gain * carry
        carry = block[-1]
    return out.reshape(-1, m)[:k]


@dataclass
class _State:
    """Everything the model carries from one step to the next."""

    log_price: np.ndarray  # per symbol
    log_vol: np.ndarray  # per symbol, OU around 0
    activity: float  # market-wide log-activity, OU around 0
    burst: bool
    regime_left_ms: float
    next_id: np.ndarray  # per symbol


class _Model:
    """The market model; :meth:`run` advances it over equal time buckets."""

    def __init__(
        self,
        symbols: Sequence[str],
        start_prices: Mapping[str, float],
        seed: int | None,
        start_ids: Mapping[str, int] | None = None,
    ) -> None:
        self.symbols = list(symbols)
        profiles = [default_profile(s) for s in self.symbols]
        prices = np.array([start_prices.get(s, p[0]) for s, p in zip(self.symbols, profiles, strict=True)])
        self.vol = np.array([p[1] for p in profiles])
        weights = np.array([p[2] for p in profiles])
        self.weight = weights / weights.sum()
        self.price_scale = 10.0 ** np.array([price_decimals(p) for p in prices])
        self.qty_scale = 10.0 ** np.array([qty_decimals(p) for p in prices])
        self.log_median_qty = np.log(_MEDIAN_NOTIONAL / prices)
        self.rng = np.random.default_rng(seed)
        m = len(self.symbols)
        ids = np.array([(start_ids or {}).get(s, 1) for s in self.symbols], dtype=np.int64)
        self.state = _State(np.log(prices), np.zeros(m), 0.0, False, self.rng.exponential(_CALM_MEAN_S * 1000), ids)
        burst_share = _BURST_MEAN_S / (_BURST_MEAN_S + _CALM_MEAN_S)
        self._rate_norm = (1 - burst_share) + burst_share * _BURST_RATE  # mean regime multiplier

    def _regimes(self, n: int, bucket_ms: float) -> np.ndarray:
        """Burst flag per bucket from alternating exponential regime durations."""
        st, rng = self.state, self.rng
        edges, flags, t, burst = [st.regime_left_ms], [st.burst], st.regime_left_ms, st.burst
        while t <= n * bucket_ms:
            burst = not burst
            t += rng.exponential((_BURST_MEAN_S if burst else _CALM_MEAN_S) * 1000)
            edges.append(t)
            flags.append(burst)
        idx = np.searchsorted(np.array(edges), np.arange(n) * bucket_ms, side="right")
        end = n * bucket_ms
        last = int(np.searchsorted(np.array(edges), end, side="right"))
        st.burst, st.regime_left_ms = flags[last], edges[last] - end
        return np.array(flags)[idx]

    def run(self, t0: int, bucket_ms: int, n: int, rate: float, rejects: Rejects) -> TradeBatch:
        """Trades in ``[t0, t0 + n * bucket_ms)`` at ``rate`` trades/s on average, sorted by time."""
        st, rng, m = self.state, self.rng, len(self.symbols)
        dt = bucket_ms / 1000
        phi_a = math.exp(-dt / _ACTIVITY_TAU_S)
        phi_v = math.exp(-dt / _VOL_TAU_S)
        shocks_a = rng.standard_normal((n, 1)) * (_ACTIVITY_SD * math.sqrt(1 - phi_a**2))
        shocks_v = rng.standard_normal((n, m)) * (_VOL_SD * math.sqrt(1 - phi_v**2))
        activity = _ar1(shocks_a, phi_a, np.array([st.activity]))[:, 0]
        log_vol = _ar1(shocks_v, phi_v, st.log_vol)
        st.activity, st.log_vol = float(activity[-1]), log_vol[-1].copy()
        burst = self._regimes(n, bucket_ms)

        level = np.exp(activity - _ACTIVITY_SD**2 / 2) * np.where(burst, _BURST_RATE, 1.0) / self._rate_norm
        counts = rng.poisson(np.outer(level, self.weight * (rate * dt)))  # (bucket, symbol)
        per_symbol = counts.sum(axis=0)
        total = int(per_symbol.sum())
        if total == 0:
            empty = TradeBatch.empty()
            empty.rejects = rejects
            return empty

        # one row per trade, grouped by symbol then time: the order the price paths need
        cell = np.repeat(np.arange(m * n), counts.T.ravel())  # symbol-major: cell = symbol * n + bucket
        sym, bucket = (cell // n).astype(np.int32), cell % n
        offset = bucket * bucket_ms + np.floor(rng.random(total) * bucket_ms).astype(np.int64)
        order = np.argsort((sym.astype(np.int64) << 42) | offset, kind="stable")
        sym, bucket, offset = sym[order], bucket[order], offset[order]
        starts = np.concatenate([[0], np.cumsum(per_symbol)[:-1]])

        mean_rate = np.maximum(rate * self.weight, 1e-9)
        sd = self.vol / math.sqrt(_YEAR_S) / np.sqrt(mean_rate)  # per trade, so time volatility ignores the rate
        vol_mult = (
            np.exp(log_vol - _VOL_SD**2 + _ACTIVITY_VOL_BETA * activity[:, None])
            * np.where(burst, _BURST_VOL, 1.0)[:, None]
        )
        z = rng.standard_normal(total)
        ret = sd[sym] * vol_mult[bucket, sym] * z
        path = np.cumsum(ret)
        before = np.repeat(np.concatenate([[0.0], path])[starts], per_symbol)
        log_price = st.log_price[sym] + path - before
        has = per_symbol > 0
        st.log_price[has] = log_price[(starts + per_symbol - 1)[has]]
        trade_id = st.next_id[sym] + (np.arange(total) - np.repeat(starts, per_symbol))
        st.next_id += per_symbol

        scale = self.price_scale[sym]
        price = np.maximum(np.rint(np.exp(log_price) * scale), 1.0) / scale
        qscale = self.qty_scale[sym]
        qty_raw = np.exp(self.log_median_qty[sym] + _QTY_SIGMA * rng.standard_normal(total))
        qty = np.maximum(np.rint(qty_raw * qscale), 1.0) / qscale
        taker_buy = z + _SIDE_NOISE * rng.standard_normal(total) > 0

        by_time = np.argsort(offset, kind="stable")
        batch = TradeBatch.from_columns(
            list(self.symbols),
            sym[by_time],
            t0 + offset[by_time],
            price[by_time],
            qty[by_time],
            trade_id[by_time],
            taker_buy[by_time],
            np.ones(total, np.int64),
        )
        batch.rejects = rejects
        return batch


class Simulator:
    """Synthetic live source (``live = True``): trades stamped with the wall clock.

    ``rate`` is the average number of trades per second over all symbols and may
    be changed while running; ``start_prices`` overrides the default prices.
    """

    @property
    def live(self) -> bool:
        """False while the recent past plays: candles then close on event time, not the clock."""
        return not self._catching_up

    def __init__(
        self,
        symbols: Sequence[str] = DEFAULT_SYMBOLS,
        *,
        seed: int | None = None,
        rate: float = 200.0,
        start_prices: Mapping[str, float] | None = None,
        tick_s: float = 0.025,
        history_s: float = 0.0,
    ) -> None:
        names = [normalize_symbol(s) for s in symbols]
        if not names or None in names:
            raise ValueError(f"simulator needs symbols like BTCUSDT, got {list(symbols)!r}")
        prices = {normalize_symbol(k): float(v) for k, v in (start_prices or {}).items()}
        if any(not (math.isfinite(p) and p > 0) for p in prices.values()):
            raise ValueError("start prices must be positive numbers")
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be a non-negative number of trades per second, got {rate!r}")
        self.symbols: list[str] = list(dict.fromkeys(n for n in names if n))
        self.start_prices: dict[str, float] = {k: v for k, v in prices.items() if k}
        self.seed = seed
        self.rate = float(rate)
        self.tick_s = tick_s
        self.history_s = max(0.0, float(history_s))
        self._catching_up = self.history_s > 0
        self.rejects = Rejects()
        self.start_ids: dict[str, int] = {}
        self.resume_after_ms: int | None = None  # history starts after this (a previous run's last trade)

    def _model(self) -> _Model:
        return _Model(self.symbols, self.start_prices, self.seed, self.start_ids)

    def resume(self, points: Mapping[str, ResumePoint], now_ms: int) -> set[str]:
        """Go on from a previous run's last prices and trade ids instead of replaying (rewriting) the
        recent past: the history then covers only the time since that run's last trade."""
        mine = {s: p for s, p in points.items() if s in self.symbols}
        for symbol, point in mine.items():
            self.start_prices[symbol] = point.price
            self.start_ids[symbol] = point.trade_id + 1
        horizon = now_ms - int(max(self.history_s, RESUME_MIN_GAP_S) * 1000)
        continued = {s for s, p in mine.items() if p.ts_ms >= horizon}
        if continued:
            self.resume_after_ms = max(mine[s].ts_ms for s in continued)
        return continued

    def generate(self, start_ms: int, n_trades: int | None = None, *, duration_ms: int | None = None) -> TradeBatch:
        """Trades from ``start_ms`` on: exactly ``n_trades``, or all within ``duration_ms``.

        Pure: the same seed and arguments give the same trades, whatever ran before.
        """
        if (n_trades is None) == (duration_ms is None):
            raise ValueError("give exactly one of n_trades or duration_ms")
        model, rate = self._model(), self.rate
        if n_trades is not None and rate <= 0:
            raise ValueError("a simulator with rate 0 makes no trades")
        per_bucket = rate * _GEN_BUCKET_MS / 1000
        if duration_ms is not None:
            n = max(1, math.ceil(duration_ms / _GEN_BUCKET_MS))
            batch = model.run(start_ms, _GEN_BUCKET_MS, n, self.rate, self.rejects)
            return batch.take(batch.ts < start_ms + duration_ms)
        parts: list[TradeBatch] = []
        have, t = 0, start_ms
        while have < n_trades:  # type: ignore[operator]
            n = max(16, math.ceil((n_trades - have) / per_bucket * 1.05))  # type: ignore[operator]
            part = model.run(t, _GEN_BUCKET_MS, n, rate, self.rejects)
            parts.append(part)
            have += len(part)
            t += n * _GEN_BUCKET_MS
        batch = _concat(parts, self.symbols, self.rejects)
        return batch.take(slice(0, n_trades))

    def batches(self, stop: threading.Event) -> Iterator[TradeBatch]:
        """Trades as they happen, one batch per tick (~25 ms, possibly empty), until ``stop``.

        With ``history_s`` the market first plays the recent past as fast as it
        can (so charts open on hours of candles, not an empty axis), then goes
        on live from where that history ends.
        """
        model = self._model()
        last = now_ms()
        yield from self._history(model, last, stop)
        self._catching_up = False
        while not stop.wait(self.tick_s):
            now = now_ms()
            start = max(last, now - 1000)  # after a stall, do not invent a backlog
            if now > start:
                yield model.run(start, now - start, 1, self.rate, self.rejects).validated(now)
                last = now
            else:
                yield TradeBatch.empty()

    def _history(self, model: _Model, until_ms: int, stop: threading.Event) -> Iterator[TradeBatch]:
        start = until_ms - int(self.history_s * 1000)
        if self.resume_after_ms is not None:
            start = max(start, self.resume_after_ms + 1)
        step = 10_000 // _GEN_BUCKET_MS  # 10 s of market per batch
        for t in range(start, until_ms, step * _GEN_BUCKET_MS):
            if stop.is_set():
                return
            n = min(step, -(-(until_ms - t) // _GEN_BUCKET_MS))
            batch = model.run(t, _GEN_BUCKET_MS, n, self.rate, self.rejects)
            yield batch.take(batch.ts < until_ms).validated(until_ms)


def open_spec(arg: str, options: SourceOptions) -> Simulator:
    """``simulator``: the given symbols (default: a few majors), seed, recent history and rate."""
    return Simulator(
        options.symbols or DEFAULT_SYMBOLS, rate=options.rate, seed=options.seed, history_s=options.history_s
    )


def _concat(parts: list[TradeBatch], symbols: list[str], rejects: Rejects) -> TradeBatch:
    parts = [p for p in parts if len(p)]
    if not parts:
        empty = TradeBatch.empty()
        empty.symbols, empty.rejects = list(symbols), rejects
        return empty
    names = ("sym", "ts", "price", "qty", "trade_id", "taker_buy", "count")
    cols = [np.concatenate([getattr(p, name) for p in parts]) for name in names]
    return TradeBatch(list(symbols), *cols, rejects=rejects)
