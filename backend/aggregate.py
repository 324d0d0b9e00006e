"""Trades → OHLCV candles at several intervals, with Binance kline semantics.

Pure logic, no I/O. Each batch of trades is reduced with numpy to partial
candles of the finest interval (one per symbol and period), and those partials
are rolled up into the candles of every interval (:mod:`backend.rollup`; each sum
is the candle's trades added one by one in the order they arrived, so its bits do not
depend on how the trades were batched): the per-trade and per-partial work is
vectorised, the Python work is per (symbol, candle, interval).

Semantics (DESIGN.md "Candles"): open/close are the first/last trade by
(ts, trade_id); a period without trades after the symbol's first trade is a
flat candle at the previous close; a candle closes when a later trade of its
symbol passes its end, or (live sources) when the wall clock passes its end
plus a grace; a trade older than the symbol's open candle of the finest
interval is late, counted and dropped. Every emitted candle carries ``seq``,
increasing by one per (symbol, interval). Forming candles are coalesced per
stream: the first change goes out at once, later ones at most every
``emit_ms``; closes go out at once.

Within one batch trades are ordered by (ts, trade_id) before they are applied,
so a batch is one step of event time.

The open candles and ``seq`` of a symbol can be taken out (:meth:`Aggregator.take_changed_state`)
and put back (:meth:`Aggregator.restore`): the ingest keeps them in Redis so that a restart
continues each stream where it was, skipping the trades the restored state already counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from backend.intervals import INTERVALS_MS
from backend.models import Candle, TradeBatch
from backend.rollup import SUM_FIELDS, Carried, Layout, Partials, TradeValues, layout, rollup, stream_steps
from backend.streams import FLAT_RUN_MIN, FlatRun, Stream, SymbolState, TradeKey, closed_chunks, final_copy

_NEVER = np.iinfo(np.int64).min
# a batch candle's columns in the order of a partial (:meth:`Stream.start`) after its symbol code and open time
_STEP_COLUMNS = (
    *("code", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades"),
    *("taker_buy_volume", "taker_buy_quote_volume", "first_ts", "first_id", "last_ts", "last_id"),
)
_CLOSE_COLUMNS = _STEP_COLUMNS[2:11]  # open … taker_buy_quote_volume: the closed candle's values, in Candle's order
CLOSED_CHUNK = 65_536  # candles per list from take_closed_chunks


class Aggregator:
    """Multi-interval streaming candle aggregator.

    Feed it with :meth:`add`; take what is due to publish with :meth:`drain`.
    ``live`` enables closing on the wall clock (pass ``now_ms`` to ``drain``).
    """

    def __init__(
        self,
        intervals: Iterable[str],
        *,
        emit_ms: int = 100,
        live: bool = False,
        close_grace_ms: int = 250,
    ) -> None:
        self.intervals: tuple[str, ...] = tuple(sorted(set(intervals), key=INTERVALS_MS.__getitem__))
        if not self.intervals:
            raise ValueError("at least one interval is needed")
        self.fine_ms = INTERVALS_MS[self.intervals[0]]
        self._intervals_ms = [INTERVALS_MS[iv] for iv in self.intervals]
        self.emit_ms = emit_ms
        self.live = live
        self.close_grace_ms = close_grace_ms
        self._codes: dict[str, int] = {}
        self._streams: list[list[Stream]] = []  # by symbol code, then interval
        self._open_fine = np.zeros(0, dtype=np.int64)  # open_time of the finest open candle
        self._final_end = np.zeros(0, dtype=np.int64)  # exchange candles are final up to here (put_final)
        self._closed: list[Candle | FlatRun] = []  # closed candles waiting for drain, in event order
        self._has_flat_runs = False  # some of them are runs of flat candles
        self._dirty: list[Stream] = []
        self._next_wall_close = 1 << 62
        self._last_trade: list[TradeKey | None] = []  # by symbol code: the newest trade counted
        self._changed: set[int] = set()  # symbol codes whose streams changed since take_changed_state
        # by symbol code, after restore: trades up to this (ts, trade_id) are already counted
        self._resume_ts: np.ndarray | None = None
        self._resume_id = np.zeros(0, dtype=np.int64)
        self.trades_in = 0
        self.already_counted = 0  # trades skipped because a restored state had counted them
        self.late: dict[str, int] = {}

    # ------------------------------------------------------------ input

    @property
    def symbols(self) -> list[str]:
        return list(self._codes)

    def _code(self, symbol: str) -> int:
        code = self._codes.get(symbol)
        if code is None:
            code = self._codes[symbol] = len(self._codes)
            self._streams.append([Stream(symbol, iv) for iv in self.intervals])
            self._open_fine = np.append(self._open_fine, _NEVER)
            self._last_trade.append(None)
            if self._resume_ts is not None:
                self._resume_ts = np.append(self._resume_ts, _NEVER)
                self._resume_id = np.append(self._resume_id, _NEVER)
            self._final_end = np.append(self._final_end, _NEVER)
        return code

    def add(self, batch: TradeBatch) -> None:
        """Apply a batch of validated trades (see ``TradeBatch.validated``)."""
        if len(batch) == 0:
            return
        remap = np.array([self._code(s) for s in batch.symbols], dtype=np.int64)
        code = remap[batch.sym]
        ts = batch.ts
        if self._resume_ts is not None:
            rts = self._resume_ts[code]
            counted = (ts < rts) | ((ts == rts) & (batch.trade_id <= self._resume_id[code]))
            if counted.any():
                self.already_counted += int(counted.sum())
                keep = ~counted
                batch = batch.take(keep)
                code, ts = code[keep], batch.ts
                if len(ts) == 0:
                    return
        late = ts < np.maximum(self._open_fine[code], self._final_end[code])
        if late.any():
            for c, n in zip(*np.unique(code[late], return_counts=True), strict=True):
                sym = self._streams[int(c)][0].symbol
                self.late[sym] = self.late.get(sym, 0) + int(n)
            keep = ~late
            batch = batch.take(keep)
            code, ts = code[keep], batch.ts
            if len(ts) == 0:
                return
        self.trades_in += len(ts)

        order = trade_order(code, ts, batch.trade_id, len(self._codes))
        code = code[order]
        ts = ts[order]
        price = batch.price[order]
        tid = batch.trade_id[order]
        bucket = ts - ts % self.fine_ms

        n = len(ts)
        edge = np.empty(n, dtype=bool)
        edge[0] = True
        np.not_equal(code[1:], code[:-1], out=edge[1:])
        edge[1:] |= bucket[1:] != bucket[:-1]
        starts = np.flatnonzero(edge)
        ends = np.append(starts[1:], n) - 1

        fine = Partials(
            code=code[starts],
            open_time=bucket[starts],
            open=price[starts],
            high=np.maximum.reduceat(price, starts),
            low=np.minimum.reduceat(price, starts),
            close=price[ends],
            trades=np.add.reduceat(batch.count[order], starts),
            first_ts=ts[starts],
            first_id=tid[starts],
            last_ts=ts[ends],
            last_id=tid[ends],
        )
        partial = np.empty(n, dtype=np.int64)
        partial[order] = np.cumsum(edge) - 1  # each trade's partial, in arrival order
        quote = batch.price * batch.qty
        values = TradeValues(
            partial=partial,
            volume=batch.qty,
            quote_volume=quote,
            taker_buy_volume=np.where(batch.taker_buy, batch.qty, 0.0),
            taker_buy_quote_volume=np.where(batch.taker_buy, quote, 0.0),
        )
        self._fold(fine, values)
        # the newest trade of each symbol in the batch: the end of its last group in (symbol, ts, id) order
        group_code = fine.code
        last_groups = np.flatnonzero(np.append(group_code[1:] != group_code[:-1], True))
        last_rows = ends[last_groups]
        last_trade = self._last_trade
        for g, t, i in zip(
            group_code[last_groups].tolist(), ts[last_rows].tolist(), tid[last_rows].tolist(), strict=True
        ):
            key = (t, i)
            prev = last_trade[g]
            if prev is None or key > prev:
                last_trade[g] = key
            self._changed.add(g)
            self._open_fine[g] = self._streams[g][0].open_time

    def _fold(self, fine: Partials, values: TradeValues) -> None:
        """Fold a batch's partials (one per symbol and finest period) into the candles of every interval.

        The candles are vectorised (:mod:`backend.rollup`, each sum added trade by trade onto the
        candle's own). They are taken in the order a candle-by-candle fold takes them (by first partial,
        then interval from the finest), so candles close and streams turn dirty in that order. A stream's
        first candle of the batch is a Python step (:meth:`_apply`: it may go on from the stream's open
        candle, or close it); each later one closes the one before it, so those closes are made together
        from the columns (:meth:`_close_later`) and the last candle is left open.
        """
        lay = layout(fine, self._intervals_ms)
        candles = rollup(fine, lay, values, self._carried(lay))
        order = np.argsort(lay.first * lay.intervals + lay.interval)
        interval = lay.interval[order]
        cols = {name: getattr(candles, name)[order] for name in _STEP_COLUMNS}
        first, before = stream_steps(cols["code"] * lay.intervals + interval)
        outer, self._closed = self._closed, []  # this batch's closes, with the step that closed each
        try:
            items: list[Candle | FlatRun] = []
            keys: list[int] = []
            firsts = np.flatnonzero(first)
            streams = self._streams
            for j, k, g, t, o, h, lo, c, v, qv, n, bv, bqv, ts0, id0, ts1, id1 in zip(
                firsts.tolist(),
                interval[firsts].tolist(),
                *(cols[name][firsts].tolist() for name in _STEP_COLUMNS),
                strict=True,
            ):
                self._apply(streams[g][k], t, (o, h, lo, c, v, qv, n, bv, bqv, (ts0, id0), (ts1, id1), ts1))
                if self._closed:
                    items += self._closed
                    keys += [j] * len(self._closed)
                    self._closed.clear()
            if len(firsts) < len(first):
                self._close_later(interval, cols, np.flatnonzero(~first), before, items, keys)
                order_closed = np.argsort(np.array(keys, dtype=np.int64), kind="stable").tolist()
                items = [items[i] for i in order_closed]
        finally:
            outer += items
            self._closed = outer

    def _close_later(
        self,
        interval: np.ndarray,
        cols: dict[str, np.ndarray],
        later: np.ndarray,
        before: np.ndarray,
        items: list[Candle | FlatRun],
        keys: list[int],
    ) -> None:
        """Close, at step ``j`` of ``later``, the candle of step ``before[j]`` (and the flat ones after it), and
        open each stream's last candle: what :meth:`_roll` does candle by candle, made from the columns.

        A candle closed here is one of the batch's own (its values are the columns'), except the stream's
        first, which :meth:`_apply` may have merged into the open candle: that one is the stream's. ``seq``
        goes on from the stream's, one per close and per flat candle, in order.
        """
        at = before[later]
        open_time = cols["open_time"]
        ms = np.asarray(self._intervals_ms, dtype=np.int64)[interval[later]]
        gap = (open_time[later] - open_time[at]) // ms - 1  # flat candles between the two
        stream = cols["code"][later] * len(self.intervals) + interval[later]
        streams = self._streams
        owner = [streams[g][k] for g, k in zip(cols["code"][later].tolist(), interval[later].tolist(), strict=True)]
        # each close's seq: the stream's, plus one per close and flat candle before it in the batch, plus one
        by = np.argsort(stream, kind="stable")
        taken = 1 + gap[by]
        new_stream = np.empty(len(by), dtype=bool)
        new_stream[0] = True
        np.not_equal(stream[by][1:], stream[by][:-1], out=new_stream[1:])
        ahead = np.cumsum(taken) - taken
        ahead -= ahead[new_stream][np.cumsum(new_stream) - 1]
        seq = np.empty(len(later), dtype=np.int64)
        seq[by] = np.array([owner[i].seq for i in by.tolist()], dtype=np.int64) + ahead + 1
        own = before[at] >= 0  # a stream's first candle of the batch has no candle before it
        from_stream = np.flatnonzero(~own)
        # the stream's first candle of the batch, as it stands after _apply
        for i in from_stream.tolist():
            st = owner[i]
            st.seq = int(seq[i]) - 1
            items.append(st.snapshot(True, 0))
            keys.append(int(later[i]))
        # the batch's own candles, positional (see Candle), straight from the columns
        mine, src = np.flatnonzero(own), at[own]
        names = self.symbols  # by code
        labels = self.intervals
        items += [
            Candle(names[g], labels[k], t, t + m - 1, o, h, lo, c, v, qv, n, bv, bqv, True, q, et)
            for g, k, t, m, o, h, lo, c, v, qv, n, bv, bqv, q, et in zip(
                cols["code"][src].tolist(),
                interval[src].tolist(),
                open_time[src].tolist(),
                ms[mine].tolist(),
                *(cols[name][src].tolist() for name in _CLOSE_COLUMNS),
                seq[mine].tolist(),
                cols["last_ts"][src].tolist(),
                strict=True,
            )
        ]
        keys += later[mine].tolist()
        # the flat candles of each gap, after its close (a long gap as a run, made when taken)
        for i in np.flatnonzero(gap > 0).tolist():
            st, a = owner[i], int(at[i])
            price, event_time = (
                (st.close, st.event_time) if not own[i] else (float(cols["close"][a]), int(cols["last_ts"][a]))
            )
            run = FlatRun(
                st.symbol,
                st.interval,
                st.ms,
                int(open_time[a]) + st.ms,
                int(gap[i]),
                price,
                event_time,
                int(seq[i]) + 1,
            )
            if run.count > FLAT_RUN_MIN:
                self._has_flat_runs = True
                flats: list[Candle | FlatRun] = [run]
            else:
                flats = list(run.candles())
            items += flats
            keys += [int(later[i])] * len(flats)
        # each stream's last candle of the batch stays open
        last = by[np.append(new_stream[1:], True)]
        opens = later[last]
        for i, t, o, h, lo, c, v, qv, n, bv, bqv, ts0, id0, ts1, id1 in zip(
            last.tolist(), *(cols[name][opens].tolist() for name in _STEP_COLUMNS[1:]), strict=True
        ):
            st = owner[i]
            st.start(t, (o, h, lo, c, v, qv, n, bv, bqv, (ts0, id0), (ts1, id1), ts1))
            st.seq = int(seq[i] + gap[i])
            st.last_emit = -(1 << 62)  # the new candle's first change goes out at once
            self._track_wall_close(st)

    def _carried(self, lay: Layout) -> Carried:
        """The candles of the batch that go on from their stream's open candle, and its sums.

        An (interval, symbol)'s first candle in the batch may be the one its stream has
        open (with trades): its trades are added onto that candle's sums. Any other starts from 0.
        """
        rows: list[int] = []
        values: list[tuple[float, float, float, float]] = []
        streams = self._streams
        first = np.flatnonzero(lay.goes_on)
        for i, k, g, t in zip(
            first.tolist(), lay.interval[first].tolist(), lay.code[first].tolist(), lay.open_time[first].tolist(),
            strict=True,
        ):  # fmt: skip
            st = streams[g][k]
            if st.open_time == t and st.first_key is not None:  # what _apply merges into
                rows.append(i)
                values.append((st.volume, st.quote_volume, st.taker_buy_volume, st.taker_buy_quote_volume))
        columns = np.array(values, dtype=np.float64).reshape(len(values), len(SUM_FIELDS))
        return Carried(np.array(rows, dtype=np.int64), {name: columns[:, j] for j, name in enumerate(SUM_FIELDS)})

    def _apply(self, st: Stream, open_time: int, part: tuple) -> None:
        if open_time == st.open_time:
            if st.first_key is None:  # an empty candle opened by the clock: its first trade
                st.start(open_time, part)
            else:
                st.merge(part)
        elif st.open_time < 0:
            st.start(open_time, part)
            self._track_wall_close(st)
        else:  # a later period: close this one, fill the gap with flat candles
            self._roll(st, open_time, part)
        if not st.dirty:
            st.dirty = True
            self._dirty.append(st)

    def put_final(self, symbol: str, rollups: dict[str, list[tuple[Candle, bool]]]) -> None:
        """Take an exchange's own candles for ``symbol`` as final: history, or a gap too long for its trades.

        ``rollups`` maps each interval to ``(candle, complete)`` from
        :func:`backend.sources.backfill.rollup`, oldest first, each period
        covered from its start. A complete period is emitted closed (with the
        stream's next seq; it replaces whatever the pipeline had for that
        period); the incomplete one at the end becomes the stream's forming
        candle. Intervals finer than the exchange's candles (1s) are left as
        they are. Trades older than the end of the candles are late from now on.
        """
        code = self._code(symbol)
        end = _NEVER
        for st in self._streams[code]:
            for candle, complete in rollups.get(st.interval, ()):
                part = (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.quote_volume,
                        candle.trades, candle.taker_buy_volume, candle.taker_buy_quote_volume,
                        (candle.open_time, -1), (candle.event_time, -1), candle.event_time)  # fmt: skip
                end = max(end, candle.close_time + 1 if complete else candle.open_time)
                if st.open_time > candle.open_time:  # a period the pipeline closed already: replace it
                    self._closed.append(final_copy(candle, st))
                    continue
                if st.open_time >= 0 and st.open_time < candle.open_time:
                    self._roll(st, candle.open_time)  # closes what the pipeline had, flat up to here
                st.start(candle.open_time, part)
                self._track_wall_close(st)
                if complete:
                    self._roll(st, candle.open_time + st.ms)  # the next period opens empty until its first trade
                elif not st.dirty:
                    st.dirty = True
                    self._dirty.append(st)
        if end > self._final_end[code]:
            self._final_end[code] = end
            # the finer streams (1s) may hold trades the exchange's candles already count
            self._open_fine[code] = max(int(self._open_fine[code]), self._streams[code][0].open_time)

    def last_trades(self) -> dict[str, tuple[int, int]]:
        """Per symbol, ``(ts, trade_id)`` of the newest trade its open candles hold: where a restarted feed resumes."""
        out: dict[str, tuple[int, int]] = {}
        for per_symbol in self._streams:
            keys = [st.last_key for st in per_symbol if st.open_time >= 0 and st.last_key is not None]
            if keys:
                out[per_symbol[0].symbol] = max(keys)
        return out

    def _roll(self, st: Stream, open_time: int, part: tuple | None = None) -> None:
        """Close ``st``, close flat candles up to ``open_time`` and open the candle there.

        The new candle starts from ``part`` (a trade-driven close) or flat at
        the previous close (a clock-driven close).
        """
        closed = self._closed
        closed.append(st.snapshot(True, 0))
        t = st.open_time + st.ms
        gap = -(-(open_time - t) // st.ms)  # flat candles at t, t + ms, ... before open_time
        if gap > FLAT_RUN_MIN:  # made when taken; the candle opened below replaces the stream's state whole
            closed.append(FlatRun(st.symbol, st.interval, st.ms, t, gap, st.close, st.event_time, st.seq + 1))
            self._has_flat_runs = True
            st.seq += gap
            t += gap * st.ms
        while t < open_time:
            st.start_flat(t)
            closed.append(st.snapshot(True, 0))
            t += st.ms
        if part is None:
            st.start_flat(open_time)
        else:
            st.start(open_time, part)
        st.last_emit = -(1 << 62)  # the new candle's first change goes out at once
        self._track_wall_close(st)

    def _track_wall_close(self, st: Stream) -> None:
        due = st.open_time + st.ms + self.close_grace_ms
        if due < self._next_wall_close:
            self._next_wall_close = due

    def restore(self, state: SymbolState) -> None:
        """Continue a symbol from a stored state: its open candles, ``seq``, and the trades it counted.

        Streams of intervals this aggregator does not run are ignored; later trades
        up to ``state.last_trade`` (by (ts, trade_id)) are skipped as already counted.
        """
        code = self._code(state.symbol)
        per_symbol = self._streams[code]
        by_interval = {st.interval: st for st in per_symbol}
        for s in state.streams:
            st = by_interval.get(s.interval)
            if st is not None:
                st.restore(s)
                if st.open_time >= 0:
                    self._track_wall_close(st)
        self._open_fine[code] = per_symbol[0].open_time
        if state.last_trade is not None:
            self._last_trade[code] = tuple(state.last_trade)
            if self._resume_ts is None:
                self._resume_ts = np.full(len(self._codes), _NEVER, dtype=np.int64)
                self._resume_id = np.full(len(self._codes), _NEVER, dtype=np.int64)
            self._resume_ts[code], self._resume_id[code] = state.last_trade

    def take_changed_state(self) -> list[SymbolState]:
        """The state of every symbol whose streams changed since the last call (for the ingest to store)."""
        if not self._changed:
            return []
        out = [
            SymbolState(
                self._streams[code][0].symbol,
                self._last_trade[code],
                [st.state() for st in self._streams[code]],
            )
            for code in sorted(self._changed)
        ]
        self._changed.clear()
        return out

    # ------------------------------------------------------------ output

    def close_due(self, now_ms: int) -> None:
        """Live sources: close candles whose end plus the grace has passed on the wall clock."""
        if now_ms < self._next_wall_close:
            return
        horizon = now_ms - self.close_grace_ms
        self._next_wall_close = 1 << 62
        for code, per_symbol in enumerate(self._streams):
            for st in per_symbol:
                if st.open_time < 0:
                    continue
                if st.open_time + st.ms <= horizon:
                    self._roll(st, horizon - horizon % st.ms)
                    self._changed.add(code)
                    if not st.dirty:
                        st.dirty = True
                        self._dirty.append(st)
                else:
                    self._track_wall_close(st)
            self._open_fine[code] = per_symbol[0].open_time

    def drain(self, now_ms: int, *, force: bool = False) -> list[Candle]:
        """Candles to publish now: every close, then forming candles that are due.

        ``force`` emits every changed forming candle regardless of ``emit_ms``
        (used at shutdown and by offline aggregation).
        """
        return [c for chunk in self.drain_chunks(now_ms, force=force) for c in chunk]

    def drain_chunks(self, now_ms: int, *, force: bool = False, size: int = CLOSED_CHUNK) -> Iterator[list[Candle]]:
        """What :meth:`drain` returns, in lists of at most ``size`` closes (the last also holds the forming candles).

        A live ingest restarted after days offline closes millions of flat candles at once: made a chunk at
        a time, they are published without ever being held all together. Usually it is one list.
        """
        if self.live:
            self.close_due(now_ms)
        last: list[Candle] = []
        for chunk in self.take_closed_chunks(size):  # each chunk goes out once the next is made (or none is)
            if last:
                yield last
            for c in chunk:
                c.emitted_at = now_ms
            last = chunk
        if self._dirty:
            keep: list[Stream] = []
            for st in self._dirty:
                if force or now_ms - st.last_emit >= self.emit_ms:
                    st.dirty = False
                    st.last_emit = now_ms
                    last.append(st.snapshot(False, now_ms))
                else:
                    keep.append(st)
            self._dirty = keep
        if last:
            yield last

    def take_closed(self) -> list[Candle]:
        """Only the closed candles, leaving forming ones untouched."""
        out, self._closed = self._closed, []
        if not self._has_flat_runs:
            return out  # type: ignore[return-value]  # no FlatRun among them
        self._has_flat_runs = False
        return [c for item in out for c in (item.candles() if isinstance(item, FlatRun) else (item,))]

    def take_closed_chunks(self, size: int = CLOSED_CHUNK) -> Iterator[list[Candle]]:
        """The closed candles as :meth:`take_closed` gives them, in lists of about ``size``: a long gap's flat
        candles are made a chunk at a time (the offline command, in bounded memory)."""
        out, self._closed = self._closed, []
        if not self._has_flat_runs and len(out) <= size:  # the usual flush: the list as it is
            return iter([out] if out else [])  # type: ignore[list-item]  # no FlatRun among them
        self._has_flat_runs = False
        return closed_chunks(out, size)

    def next_due_ms(self) -> int | None:
        """Wall-clock time when :meth:`drain` next has something to emit, if anything is pending."""
        due = [st.last_emit + self.emit_ms for st in self._dirty]
        if self.live:
            due.append(self._next_wall_close)
        return min(due) if due else None

    def open_candles(self, emitted_at: int = 0) -> list[Candle]:
        """The candle each stream has open now, without taking a seq (for offline output)."""
        out = []
        for per_symbol in self._streams:
            for st in per_symbol:
                if st.open_time >= 0:
                    c = st.snapshot(False, emitted_at)
                    st.seq -= 1
                    out.append(c)
        return out


def trade_order(code: np.ndarray, ts: np.ndarray, trade_id: np.ndarray, codes: int) -> np.ndarray:
    """The stable sort of trades by (symbol code, ts, trade_id): ``np.lexsort``'s permutation, mostly faster.

    A feed's trades usually come in (ts, trade_id) order within each symbol. Then the
    stable sort by code alone (a radix sort for small integers) is that same
    permutation (a stable sort is unique), for a fraction of lexsort's cost; one pass
    checks the order, and lexsort is the fallback.
    """
    small = code.astype(np.int16) if codes <= np.iinfo(np.int16).max else code
    order = np.argsort(small, kind="stable")
    c, t, i = code[order], ts[order], trade_id[order]
    in_order = (c[1:] != c[:-1]) | (t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (i[1:] >= i[:-1]))
    if in_order.all():
        return order
    return np.lexsort((trade_id, ts, code))
