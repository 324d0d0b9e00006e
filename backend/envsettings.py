"""How a settings class is read: ``CANDLES_*`` variables, a ``.env`` file, command-line flags.

A settings class (:class:`backend.config.Settings`, the app's in ``services/settings.py``)
subclasses :class:`EnvSettings` and only declares fields: type, default, validation and a
description. A field tagged with :class:`Flag` is also a flag of the ``python -m backend``
commands it names, with its help taken from the description, so a new setting is one field.
An invalid value fails with one line naming the variable or flag: :class:`SettingsError`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Self

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "CANDLES_"


@dataclass(frozen=True)
class Flag:
    """Field metadata: the setting is also a flag of these commands."""

    commands: tuple[str, ...]
    name: str | None = None  # default: the field's name in kebab case (``emit_ms`` → ``--emit-ms``)


class SettingsError(ValueError):
    """A setting that does not validate, in one line: ``CANDLES_INTERVALS: unknown interval 9m; …``."""


class _Environ(EnvSettingsSource):
    """The ``CANDLES_*`` variables of a given mapping (``os.environ`` or a test's dict)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class EnvSettings(BaseSettings):
    """Immutable settings; ``Cls(**values)`` takes only the values given, ``from_env`` reads the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Construction uses only the values given, so code and tests never pick up a stray variable."""
        return (init_settings,)

    @classmethod
    def env_values(cls, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The raw values the environment sets: ``environ`` alone, or ``os.environ`` over ``./.env``."""
        if environ is not None:
            return dict(_Environ(cls, environ)())
        return {**DotEnvSettingsSource(cls)(), **_Environ(cls, os.environ)()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """Read the environment, then apply the non-None ``overrides`` (command-line flags)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**(cls.env_values(environ) | given))
        except ValidationError as exc:
            raise SettingsError(cls.describe(exc, flags=set(given))) from None

    @classmethod
    def from_env_lenient(cls, environ: Mapping[str, str] | None = None) -> tuple[Self, str | None]:
        """Like :meth:`from_env`, but an invalid value keeps its default; the second item says which."""
        values = cls.env_values(environ)
        try:
            return cls(**values), None
        except ValidationError as exc:
            bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
            return cls(**{k: v for k, v in values.items() if k not in bad}), cls.describe(exc)

    @classmethod
    def describe(cls, exc: ValidationError, flags: Collection[str] = ()) -> str:
        """One line per problem, joined: the variable (or the flag, for ``flags``), then why."""
        parts = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            where = flag_name(name, cls.model_fields[name]) if name in flags else env_name(name)
            why = err["msg"].removeprefix("Value error, ")
            if err["type"] != "value_error":  # pydantic's own words: "Input should be …"
                why = f"{why[:1].lower()}{why[1:]} (got {err['input']!r})"
            parts.append(f"{where}: {why}")
        return "; ".join(parts)


def env_name(field: str) -> str:
    """The environment variable of a field: ``emit_ms`` → ``CANDLES_EMIT_MS``."""
    return ENV_PREFIX + field.upper()


def _flag(field: FieldInfo) -> Flag | None:
    return next((m for m in field.metadata if isinstance(m, Flag)), None)


def flag_name(name: str, field: FieldInfo) -> str:
    """The command-line flag of a field: its :class:`Flag` name, or ``--kebab-name``."""
    flag = _flag(field)
    return (flag and flag.name) or "--" + name.replace("_", "-")


def _text(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)


def flag_fields(cls: type[EnvSettings], command: str) -> dict[str, FieldInfo]:
    """The fields that are flags of ``command``, in declaration order."""
    return {name: f for name, f in cls.model_fields.items() if (flag := _flag(f)) and command in flag.commands}


def add_flags(parser: argparse.ArgumentParser, cls: type[EnvSettings], command: str) -> None:
    """Add a flag per field of ``command``; values stay text for the settings class to validate."""
    for name, field in flag_fields(cls, command).items():
        default = "" if field.default is None else f" (default {_text(field.default)})"
        help_text = f"{field.description}{default} [{env_name(name)}]".replace("%", "%%")
        parser.add_argument(flag_name(name, field), dest=name, metavar=name.upper(), help=help_text)


def flag_values(args: argparse.Namespace, cls: type[EnvSettings]) -> dict[str, Any]:
    """The settings given as flags (None where a flag was not used), for :meth:`EnvSettings.from_env`."""
    return {name: getattr(args, name) for name in cls.model_fields if hasattr(args, name)}


def as_flags(settings: EnvSettings, command: str) -> list[str]:
    """The command line that gives ``command`` these settings (unset ones left out)."""
    out: list[str] = []
    for name, field in flag_fields(type(settings), command).items():
        value = getattr(settings, name)
        if value is not None:
            out += [flag_name(name, field), _text(value)]
    return out
