"""The overview's tiles sent as splices: what changed between two versions of the grid, and applying it."""

from __future__ import annotations

import json

from services.charts.splice import apply_cells_patch, apply_text_patch, cells_patch, text_patch, tokens
from services.charts.tiles import TileData, placeholder_html, tile_html
from services.ui.plot import CELL_PATCHES, cells_frame

SPARK = tuple(100.0 + (i % 7) * 0.25 for i in range(120))


def tile(price: float, pct: float, spark: tuple[float, ...] = SPARK, vol: float = 1.2e6) -> str:
    t = TileData("BTCUSDT", price, pct, "24h", 102.0, 99.0, vol, spark, "last 2h", 1)
    return tile_html(t, href="candles?symbol=BTCUSDT")


def test_a_moving_price_sends_the_numbers_that_moved() -> None:
    old = "<b>101.23</b> <i>+0.52%</i> <svg points='0.0,1.0 220.0,35.2'/>"
    new = "<b>101.26</b> <i>+0.52%</i> <svg points='0.0,1.0 220.0,35.9'/>"
    assert text_patch(old, new) == [(3, 9, "101.26"), (48, 59, " 220.0,35.9")]  # a point with its space
    assert apply_text_patch(old, text_patch(old, new)) == new
    assert text_patch(old, old) == []


def test_markup_that_grows_or_shrinks_is_spliced_too() -> None:
    old = "<span>a</span> <span>b</span>"
    new = "<span>a</span> <em>x</em> <span>b</span>"
    splices = text_patch(old, new)
    assert apply_text_patch(old, splices) == new
    assert sum(len(s[2]) for s in splices) < len(new) / 2


def test_a_tile_whose_price_pill_volume_and_last_point_move_costs_a_few_dozen_bytes() -> None:
    old = tile(101.23, 0.52)
    new = tile(101.26, 0.55, spark=(*SPARK[:-1], 100.9), vol=1.21e6)
    patch = cells_patch([old, old], [old, new])
    assert patch is not None and list(patch) == ["1"]
    inserted = [s[2] for s in patch["1"]]
    assert inserted[:2] == ["+0.55%", "101.26"] and inserted[-1] == "1.21M"
    assert len(inserted) == 5  # pill, price, the sparkline's last point in the area and in the line, volume
    assert apply_cells_patch([old, old], patch) == [old, new]
    assert len(json.dumps(patch)) < 200 < len(new)


def test_a_tile_that_changed_all_over_is_sent_as_one_splice() -> None:
    old = "<b>loading</b>"
    new = tile(101.23, 0.52)
    patch = cells_patch([old], [new])
    assert patch == {"0": [(0, len(old), new)]}
    assert cells_patch([old], [old, new]) is None  # another number of tiles: the whole grid


def test_grid_versions_share_patches_and_send_ascii() -> None:
    waiting = placeholder_html("ETHUSDT", "loading…")
    a = cells_frame([tile(101.23, 0.52), waiting], "cs-cols-3")
    b = cells_frame([tile(101.26, 0.52), waiting], "cs-cols-3")
    body = json.loads(a.full)
    assert body == {"cells": list(a.content[0]), "cls": "cs-cols-3", "token": a.token}
    assert "loading&#8230;" in body["cells"][1] and all(c.isascii() for c in body["cells"])
    update = json.loads(CELL_PATCHES.update(a, b))
    assert (update["base"], update["token"]) == (a.token, b.token)
    assert [s[2] for s in update["patch"]["0"]] == ["101.26"]
    assert CELL_PATCHES.update(a, b) is CELL_PATCHES.update(a, b)
    other_layout = cells_frame([tile(101.26, 0.52), waiting], "cs-cols-2")
    assert CELL_PATCHES.update(a, other_layout) == other_layout.full


def test_a_sparkline_point_is_one_token() -> None:
    assert tokens('points="3600,1.5 3601,-2.25"') == ["points", "=", '"', "3600,1.5", " 3601,-2.25", '"']
