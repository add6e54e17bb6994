"""Run configs generated from the library's config dataclasses, so that each setting — name,
type, default and description — is declared once, in `lib/`."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import dagster as dg
import pydantic


def run_config_class(name: str, *sources: type, doc: str, **extra: Any) -> type[dg.Config]:
    """A Dagster `Config` named `name` with every field of the `sources` dataclasses (the first
    source owns a name they share; `lib.config.setting(..., help)` gives the description) plus
    `extra` run-only fields, given as `(type, pydantic.Field(...))`."""
    fields: dict[str, Any] = {}
    for source in sources:
        hints = typing.get_type_hints(source)
        for field in dataclasses.fields(source):
            if not _has_default(field):  # set by the code from the data (e.g. a vocabulary size)
                continue
            default = pydantic.Field(
                default=_config_value(_default(field)), description=field.metadata.get("help")
            )
            fields.setdefault(field.name, (_config_type(hints[field.name]), default))
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, **fields, **extra)


def _config_type(hint: Any) -> Any:
    """Dagster's config system takes lists where the frozen dataclasses hold tuples."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return list[typing.get_args(hint)[0]]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_config_type(arg) for arg in typing.get_args(hint))]  # noqa: UP007
    return hint


def _has_default(field: dataclasses.Field) -> bool:
    return (field.default, field.default_factory) != (dataclasses.MISSING, dataclasses.MISSING)


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _config_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
