"""A whole JSON document (a REST answer saved to a file), decoded with msgspec; bad JSON is a one-line error."""

from __future__ import annotations

from typing import Any

import msgspec


def decode_document(data: bytes, decoder: msgspec.json.Decoder) -> Any:
    """``decoder.decode(data)``, with invalid JSON raised as ``ValueError("not valid JSON: …")``."""
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as e:
        raise ValueError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise ValueError("not valid trade JSON: nested deeper than the decoder allows") from None
