"""Candlestream backend: trades in, exchange-exact OHLCV candles out."""
