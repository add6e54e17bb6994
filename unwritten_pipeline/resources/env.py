"""Resource settings read from the environment: what every resource's `from_env` does.

A variable that is not set leaves its field's default. Secrets become `dg.EnvVar`, so the UI and
the run config show the variable's name, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import dagster as dg


def env_settings(
    variables: Mapping[str, str],
    *,
    secrets: Mapping[str, str] | None = None,
    numbers: Mapping[str, tuple[str, type[int] | type[float]]] | None = None,
) -> dict[str, Any]:
    """Field values from the environment.

    `variables`: field → variable, taken as it is when set (an empty value too);
    `secrets`: field → variable, a `dg.EnvVar` when set and not empty;
    `numbers`: field → (variable, int or float) when set and not empty; a value that does not
    parse fails naming the variable.
    """
    env = os.environ
    values: dict[str, Any] = {field: env[var] for field, var in variables.items() if var in env}
    for field, var in (secrets or {}).items():
        if env.get(var):
            values[field] = dg.EnvVar(var)
    for field, (var, kind) in (numbers or {}).items():
        if env.get(var):
            try:
                values[field] = kind(env[var])
            except ValueError:
                raise ValueError(f"{var}={env[var]!r} is not a valid {kind.__name__}") from None
    return values


class EnvConfigured:
    """A resource whose `from_env` reads the variables its class names (see `env_settings`)."""

    env_variables: ClassVar[Mapping[str, str]] = {}
    env_secrets: ClassVar[Mapping[str, str]] = {}
    env_numbers: ClassVar[Mapping[str, tuple[str, type[int] | type[float]]]] = {}

    @classmethod
    def from_env(cls) -> Self:
        return cls(
            **env_settings(cls.env_variables, secrets=cls.env_secrets, numbers=cls.env_numbers)
        )
