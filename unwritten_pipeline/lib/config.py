"""Library configs built from run configs: each training setting is declared once, in `lib/`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of the dataclass `cls` from the keys of `values` that it declares.

    Run configs (Dagster `Config`s) take their defaults from the library dataclass, so the library
    owns every default and the asset only adds what is specific to the run. Lists become tuples
    (frozen dataclasses hold tuples).
    """
    names = {f.name for f in fields(cls)}
    return cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    )


def setting(default: Any, help: str) -> Any:
    """A dataclass field with its default and the description a run config shows for it."""
    return field(default=default, metadata={"help": help})
