"""Settings declared once: environment variables, ``.env``, validation messages, derived flags."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from backend.cli import AGGREGATE_LOG_LEVEL, aggregate_args, build_parser
from backend.config import Settings
from backend.envsettings import SettingsError, as_flags, flag_values
from backend.sources.formats import ReadLimits
from services.settings import ui_settings


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.redis_url, s.database_url, s.symbols, s.intervals) == (None, None, None, ("1s", "1m", "5m", "15m", "1h"))
    assert (s.api_host, s.api_port, s.emit_ms, s.sim_history_s) == ("127.0.0.1", 8000, 100, 7200.0)
    assert s.effective_database_url() == "sqlite:///data/candles.sqlite3"


def test_variables_are_parsed_into_typed_values() -> None:
    s = Settings.from_env(
        {
            "CANDLES_INTERVALS": "1h, 1m,5m,1m",
            "CANDLES_SYMBOLS": "btc/usdt,eth-usdt,BTCUSDT",
            "CANDLES_CORS_ORIGINS": "http://a, http://b",
            "CANDLES_API_PORT": "9001",
            "CANDLES_SPEED": "2.5",
            "CANDLES_SEED": "7",
            "CANDLES_DATA_DIR": "/tmp/candles",
            "CANDLES_LOG_LEVEL": "debug",
            "CANDLES_API_TOKEN": "",  # empty means unset
            "CANDLES_TEST_REDIS_URL": "redis://elsewhere",  # not a setting: ignored
            "OTHER_API_PORT": "1",
        }
    )
    assert s.intervals == ("1m", "5m", "1h")
    assert s.symbols == ("BTCUSDT", "ETHUSDT")
    assert s.cors_origins == ("http://a", "http://b")
    assert (s.api_port, s.speed, s.seed, s.data_dir, s.log_level) == (9001, 2.5, 7, Path("/tmp/candles"), "DEBUG")
    assert s.api_token is None
    assert s.effective_database_url() == "sqlite:////tmp/candles/candles.sqlite3"


def test_overrides_win_over_the_environment_and_none_means_not_given() -> None:
    s = Settings.from_env({"CANDLES_API_PORT": "9001", "CANDLES_EMIT_MS": "50"}, api_port="9002", emit_ms=None)
    assert (s.api_port, s.emit_ms) == (9002, 50)


def test_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANDLES_API_PORT", "9003")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CANDLES_EMIT_MS=25\n")
    assert (Settings().api_port, Settings().emit_ms) == (8000, 100)
    assert (Settings.from_env().api_port, Settings.from_env().emit_ms) == (9003, 25)


def test_the_environment_wins_over_the_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CANDLES_API_PORT=9004\nCANDLES_REDIS_PREFIX=fromfile\nUNRELATED=1\n")
    monkeypatch.setenv("CANDLES_API_PORT", "9005")
    s = Settings.from_env()
    assert (s.api_port, s.redis_prefix) == (9005, "fromfile")
    assert Settings.from_env({}).redis_prefix == "candles"  # a given mapping is the whole environment


CHOOSE = "choose from 1s, 1m, 5m, 15m, 1h, 4h, 1d"
NOT_INT = "input should be a valid integer, unable to parse string as an integer"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CANDLES_INTERVALS": "9m"}, f"CANDLES_INTERVALS: unknown interval 9m; {CHOOSE}"),
        ({"CANDLES_INTERVALS": " , "}, f"CANDLES_INTERVALS: unknown interval (none given); {CHOOSE}"),
        (
            {"CANDLES_SYMBOLS": "BTCUSDT,x"},
            "CANDLES_SYMBOLS: bad symbol 'x': use 2 to 20 letters or digits, like BTCUSDT",
        ),
        ({"CANDLES_API_PORT": "http"}, f"CANDLES_API_PORT: {NOT_INT} (got 'http')"),
        ({"CANDLES_API_PORT": "70000"}, "CANDLES_API_PORT: input should be less than or equal to 65535 (got '70000')"),
        ({"CANDLES_SPEED": "-1"}, "CANDLES_SPEED: input should be greater than or equal to 0 (got '-1')"),
        (
            {"CANDLES_LOG_LEVEL": "loud"},
            "CANDLES_LOG_LEVEL: input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (got 'LOUD')",
        ),
        (
            {"CANDLES_EMIT_MS": "soon", "CANDLES_INTERVALS": "2m"},
            f"CANDLES_INTERVALS: unknown interval 2m; {CHOOSE}; CANDLES_EMIT_MS: {NOT_INT} (got 'soon')",
        ),
    ],
)
def test_an_invalid_variable_fails_in_one_line_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_an_invalid_override_is_named_by_its_flag() -> None:
    with pytest.raises(SettingsError, match=r"^--history: input should be a valid number, unable to parse"):
        Settings.from_env({}, sim_history_s="long")
    with pytest.raises(SettingsError, match=r"^--port: input should be a valid integer"):
        Settings.from_env({"CANDLES_API_PORT": "9000"}, api_port="x")


def test_lenient_reading_keeps_defaults_for_invalid_values() -> None:
    s, error = Settings.from_env_lenient({"CANDLES_INTERVALS": "9m", "CANDLES_RELAY_URL": "http://relay:1"})
    assert (s.intervals, s.relay_url) == (("1s", "1m", "5m", "15m", "1h"), "http://relay:1")
    assert error == "CANDLES_INTERVALS: unknown interval 9m; choose from 1s, 1m, 5m, 15m, 1h, 4h, 1d"
    assert Settings.from_env_lenient({}) == (Settings(), None)


def test_settings_are_immutable_and_copied_with_changes() -> None:
    s = Settings()
    with pytest.raises(pydantic.ValidationError):
        s.api_port = 1  # type: ignore[misc]
    copy = s.model_copy(update={"api_port": 1})
    assert (copy.api_port, s.api_port) == (1, 8000)
    assert hash(Settings(seed=1)) == hash(Settings(seed=1))


def _flags(command: str) -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return [a.option_strings[0] for a in sub.choices[command]._actions if a.option_strings]  # type: ignore[union-attr]


def test_flags_are_derived_from_the_fields() -> None:
    common = ["--redis-url", "--database-url", "--symbols", "--intervals", "--log-level"]
    ingest = ["--source", "--backfill-s", "--feed-silence-s", "--speed", "--seed", "--history", "--rate", "--emit-ms",
              "--drain-timeout"]  # fmt: skip
    assert _flags("ingest") == ["-h", *common, *ingest, "--format"]
    assert _flags("api") == ["-h", *common, "--host", "--port", "--workers"]
    assert _flags("run") == ["-h", *common, *ingest, "--host", "--port", "--workers", "--format"]
    assert _flags("aggregate") == ["-h", "--intervals", "--out", "--format", "--symbol"]


def test_flag_help_comes_from_the_description() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    actions = {a.option_strings[0]: a for a in sub.choices["run"]._actions if a.option_strings}  # type: ignore[union-attr]
    assert actions["--emit-ms"].help == "forming-candle coalescing period, ms (default 100) [CANDLES_EMIT_MS]"
    assert actions["--history"].help == (
        "seconds of recent past the simulator starts with (default 7200.0) [CANDLES_SIM_HISTORY_S]"
    )
    assert actions["--redis-url"].help == "Redis URL (unset: an embedded Valkey) [CANDLES_REDIS_URL]"
    assert actions["--host"].dest == "api_host"


def test_flags_become_overrides() -> None:
    args = build_parser().parse_args(
        ["run", "--host", "0.0.0.0", "--port", "9100", "--history", "60", "--format", "csv"]
    )
    values = flag_values(args, Settings)
    assert {k: v for k, v in values.items() if v is not None} == {
        "api_host": "0.0.0.0",
        "api_port": "9100",
        "sim_history_s": "60",
    }
    s = Settings.from_env({"CANDLES_API_PORT": "8001", "CANDLES_SPEED": "3"}, **values)
    assert (s.api_host, s.api_port, s.sim_history_s, s.speed) == ("0.0.0.0", 9100, 60.0, 3.0)


def test_settings_turn_back_into_a_command_line() -> None:
    s = Settings(symbols=("BTCUSDT", "ETHUSDT"), seed=3, database_url="sqlite:///x.db")
    assert as_flags(s, "ingest") == [
        "--database-url", "sqlite:///x.db",
        "--symbols", "BTCUSDT,ETHUSDT",
        "--intervals", "1s,1m,5m,15m,1h",
        "--log-level", "INFO",
        "--source", "simulator",
        "--backfill-s", "86400.0",
        "--feed-silence-s", "30.0",
        "--speed", "1.0",
        "--seed", "3",
        "--history", "7200.0",
        "--rate", "200.0",
        "--emit-ms", "100",
        "--drain-timeout", "10.0",
    ]  # fmt: skip
    args = build_parser().parse_args(["ingest", *as_flags(s, "ingest")])
    assert Settings.from_env({}, **flag_values(args, Settings)) == s


def test_ui_settings_report_invalid_values_instead_of_raising() -> None:
    s = ui_settings({"CANDLES_UI_REFRESH_S": "0.05", "CANDLES_AUTOSTART": "off", "CANDLES_API_TOKEN": "t"})
    assert (s.refresh_s, s.autostart, s.token) == (1.0, False, "t")
    assert s.error == "CANDLES_UI_REFRESH_S: input should be greater than or equal to 0.1 (got '0.05')"
    s = ui_settings({"CANDLES_EMIT_MS": "x", "CANDLES_UI_REFRESH_S": "2", "CANDLES_RELAY_URL": "http://r:1/"})
    assert (s.relay_url, s.refresh_s, s.autostart) == ("http://r:1", 2.0, True)
    assert s.error == (
        "a CANDLES_ setting is invalid: "
        "CANDLES_EMIT_MS: input should be a valid integer, unable to parse string as an integer (got 'x')"
    )


def test_ui_settings_follow_changes_of_the_process_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CANDLES_UI_REFRESH_S", "3")
    assert ui_settings().refresh_s == 3.0
    monkeypatch.setenv("CANDLES_UI_REFRESH_S", "4")
    assert ui_settings().refresh_s == 4.0
    monkeypatch.delenv("CANDLES_UI_REFRESH_S")
    (tmp_path / ".env").write_text("CANDLES_UI_REFRESH_S=5\n")
    assert ui_settings().refresh_s == 5.0


def test_live_charts_send_patches_unless_told_not_to() -> None:
    assert ui_settings({}).delta is True
    assert ui_settings({"CANDLES_UI_DELTA": "0"}).delta is False


def test_the_aggregate_command_runs_with_the_settings_defaults_without_reading_them() -> None:
    """It parses its own arguments first and skips importing the settings: their defaults must be what it uses."""
    s = Settings()
    assert (AGGREGATE_LOG_LEVEL, ReadLimits()) == (s.log_level, ReadLimits(s.read_max_ratio, s.read_max_bytes))


@pytest.mark.parametrize(
    "argv",
    [
        ["aggregate", "t.csv", "--out", "c.csv"],
        ["aggregate", "--out", "c.jsonl", "t.csv", "--intervals", "1s,1h", "--format", "plain_csv", "--symbol", "X"],
        ["aggregate", "--int", "1m", "t.csv", "--o", "c.csv"],  # abbreviations, as argparse allows them
    ],
)
def test_the_aggregate_arguments_parse_as_the_full_parser_parses_them(argv: list[str]) -> None:
    fast = aggregate_args(argv)
    assert fast is not None
    assert vars(fast) | {"command": "aggregate"} == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [["aggregate"], ["aggregate", "-h"], ["aggregate", "t.csv"], ["aggregate", "t.csv", "--out", "c.csv", "x"],
     ["aggregate", "--bogus", "t.csv", "--out", "c.csv"], ["run"], ["--help"], []],
)  # fmt: skip
def test_anything_else_goes_to_the_full_parser(argv: list[str]) -> None:
    assert aggregate_args(argv) is None


@pytest.mark.parametrize("name", ["CANDLES_LOG_LEVEL", "CANDLES_READ_MAX_RATIO", "CANDLES_READ_MAX_BYTES"])
def test_a_setting_of_the_aggregate_command_sends_it_to_the_settings(name: str) -> None:
    argv = ["aggregate", "t.csv", "--out", "c.csv"]
    assert aggregate_args(argv, {}) is not None
    assert aggregate_args(argv, {name: "5"}) is None
    assert aggregate_args(argv, {name: ""}) is not None  # empty is unset (env_ignore_empty)
