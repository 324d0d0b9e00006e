"""Broken trade files: every container and format fails with one line naming the file and where, never a traceback."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.models import Rejects
from backend.sources.formats import FORMATS, ReadLimits, TradeFileError, read_trades

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
T0 = 1_732_665_600_000
# a small valid file of every format (Binance dumps are named so the symbol is known)
VALID: dict[str, tuple[str, bytes]] = {
    "plain_csv": ("trades.csv", b"".join(b"%d,BTCUSDT,%d.5,0.25\n" % (T0 + i, 100 + i % 7) for i in range(4000))),
    "binance_trades_csv": (
        "BTCUSDT-trades-2024-11-27.csv",
        b"".join(b"%d,96998.91,0.00148,143.5,%d,True,True\n" % (i, T0 + i) for i in range(4000)),
    ),
    "binance_aggtrades_csv": (
        "BTCUSDT-aggTrades-2024-11-27.csv",
        b"".join(b"%d,96998.91,0.00148,%d,%d,%d,true,true\n" % (i, i, i, T0 + i) for i in range(4000)),
    ),
    "ccxt_json": ("trades.json", (SAMPLES / "binance_xrpeth_2019" / "XRP_ETH-aggtrades.json.gz").read_bytes()),
    "kraken_json": ("kraken.json", (SAMPLES / "kraken_xbtusdt_2025" / "http_trades.json").read_bytes()),
    "ws_capture": ("capture.ws", (SAMPLES / "ws_recordings" / "BINANCE.ws.1.0").read_bytes()),
}


def _plain(fmt: str) -> bytes:
    data = VALID[fmt][1]
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _read(path: Path, fmt: str, **kw: object) -> int:
    return sum(len(b) for b in read_trades(path, fmt, rejects=Rejects(), **kw))  # type: ignore[arg-type]


def test_every_format_is_covered() -> None:
    assert set(VALID) == set(FORMATS)


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_a_truncated_gzip_names_the_file_and_the_byte(tmp_path: Path, fmt: str) -> None:
    whole = gzip.compress(_plain(fmt))
    path = tmp_path / (VALID[fmt][0] + ".gz")
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(TradeFileError) as err:
        _read(path, fmt)
    message = str(err.value)
    assert message.startswith(f"{path}: the compressed data ends early (a truncated download?)")
    assert "near byte" in message and "\n" not in message


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_a_corrupt_gzip_stream_is_one_line(tmp_path: Path, fmt: str) -> None:
    damaged = bytearray(gzip.compress(_plain(fmt)))
    for i in range(len(damaged) // 2, len(damaged) // 2 + 64):
        damaged[i] ^= 0x5A
    path = tmp_path / (VALID[fmt][0] + ".gz")
    path.write_bytes(bytes(damaged))
    with pytest.raises(TradeFileError) as err:
        _read(path, fmt)
    assert str(err.value).startswith(f"{path}: corrupt ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_a_corrupt_zip_is_one_line(tmp_path: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(VALID[fmt][0], _plain(fmt))
    damaged = bytearray(buffer.getvalue())
    for i in range(200, 400):
        damaged[i] ^= 0x33
    path = tmp_path / (VALID[fmt][0] + ".zip")
    path.write_bytes(bytes(damaged))
    with pytest.raises(TradeFileError) as err:
        _read(path, fmt)
    assert str(err.value).startswith(f"{path}: corrupt compressed data (")


def test_a_bad_gzip_header_and_a_broken_zip_directory(tmp_path: Path) -> None:
    header = bytearray(gzip.compress(_plain("plain_csv")))
    header[2] = 99  # compression method: not deflate
    bad_gzip = tmp_path / "trades.csv.gz"
    bad_gzip.write_bytes(bytes(header))
    with pytest.raises(TradeFileError, match=r"corrupt gzip data \(Unknown compression method\) \(near byte 0\)$"):
        _read(bad_gzip, "plain_csv")
    bad_zip = tmp_path / "trades.zip"
    bad_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(TradeFileError, match="not a readable zip archive"):
        _read(bad_zip, "plain_csv")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("folder/", b"")
    (tmp_path / "empty.zip").write_bytes(empty.getvalue())
    with pytest.raises(TradeFileError, match="the zip archive is empty"):
        _read(tmp_path / "empty.zip", "plain_csv")


@pytest.mark.parametrize("fmt", ["ccxt_json", "kraken_json"])
def test_json_nested_too_deep_is_one_line(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "nested.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(TradeFileError) as err:
        _read(path, fmt)
    assert str(err.value) == f"{path}: not valid trade JSON: nested deeper than the decoder allows (near byte 200,000)"


def test_a_nested_line_in_a_capture_is_a_counted_reject(tmp_path: Path) -> None:
    path = tmp_path / "capture.ws"
    path.write_bytes(VALID["ws_capture"][1] + b"[" * 5000 + b"]" * 5000 + b"\n")
    rejects = Rejects()
    assert sum(len(b) for b in read_trades(path, "ws_capture", rejects=rejects)) > 0
    assert rejects.counts == {"bad_line": 1}


def _bomb(path: Path, expanded: int) -> Path:
    """A gzip of ``expanded`` spaces inside a JSON array: about 1,000 times smaller than what it holds."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    chunk = b" " * (1 << 20)
    with path.open("wb") as out:
        out.write(packer.compress(b"["))
        for _ in range(expanded >> 20):
            out.write(packer.compress(chunk))
        out.write(packer.compress(b"]") + packer.flush())
    return path


def test_a_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.json.gz", 200 << 20)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(TradeFileError) as err:
        _read(bomb, "ccxt_json")
    assert str(err.value).startswith(f"{bomb}: expands past 67,108,864 bytes (100× its size or ")
    assert "CANDLES_READ_MAX_RATIO" in str(err.value)
    with pytest.raises(TradeFileError, match="expands past 67,108,864 bytes"):
        _read(bomb, "ccxt_json", limits=ReadLimits(max_ratio=1_000_000, max_bytes=64 << 20))
    assert _read(bomb, "ccxt_json", limits=ReadLimits(max_ratio=1_000_000)) == 0  # allowed: an empty array


def test_the_ratio_floor_lets_small_repetitive_files_through(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(gzip.compress(_plain("plain_csv") * 3))
    assert _read(path, "plain_csv", limits=ReadLimits(max_ratio=2)) == 12_000
    assert ReadLimits(max_ratio=10).allowed(100 << 20) == 1000 << 20
    assert ReadLimits(max_ratio=10, max_bytes=5 << 20).allowed(100) == 5 << 20
    assert ReadLimits(max_ratio=10).allowed(100) == 64 << 20


@pytest.mark.parametrize("fmt", ["plain_csv", "binance_trades_csv", "binance_aggtrades_csv"])
def test_a_quote_beside_a_carriage_return_is_a_bad_line_not_a_traceback(tmp_path: Path, fmt: str) -> None:
    """Found by the fuzz test below: ``\\r"`` at the start of a file, or inside a line, made the csv module raise
    (``new-line character seen in unquoted field``) through the reader."""
    name, data = VALID[fmt]
    lines = data.splitlines(keepends=True)
    path = tmp_path / name
    path.write_bytes(b'\r"' + b"".join(lines[:10]) + b'x"y\rz,1,2\n' + b"".join(lines[10:]))
    rejects = Rejects()
    read = sum(len(b) for b in read_trades(path, fmt, rejects=rejects))
    assert read == len(lines) - 1  # the first line (quote and all) and the spliced one are rejected
    assert rejects.total == 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(sorted(VALID)),
    cut=st.floats(0, 1),
    noise=st.binary(max_size=300),
    container=st.sampled_from(["plain", "gzip", "zip"]),
)
def test_fuzzed_files_read_or_fail_with_one_line(
    tmp_path: Path, fmt: str, cut: float, noise: bytes, container: str
) -> None:
    """A valid file cut anywhere, with random bytes spliced in, in any container: trades or one TradeFileError."""
    name, _ = VALID[fmt]
    plain = _plain(fmt)[:20_000]
    at = int(len(plain) * cut)
    data = plain[:at] + noise + plain[at:]
    path = tmp_path / f"{name}.{container}"
    if container == "gzip":
        packed = gzip.compress(data)
        path.write_bytes(packed[: max(10, int(len(packed) * (0.5 + cut / 2)))])
    elif container == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, data)
        packed = bytearray(buffer.getvalue())
        for i, b in enumerate(noise[:50]):
            packed[(40 + i * 7) % len(packed)] ^= b
        path.write_bytes(bytes(packed))
    else:
        path.write_bytes(data)
    try:
        _read(path, fmt)
    except TradeFileError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
