"""The deployment's LLM servers as run tags + run config: the bridge between lib/scaleout/hosts.py
and the LLM resource."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from unwritten_pipeline.lib.scaleout.hosts import HOSTS_ENV, LLMHost, assign_hosts, parse_hosts
from unwritten_pipeline.resources.llm import DEFAULT_URLS, LLM_SERVER_TAG, LLMResource


@dataclass(frozen=True)
class ServerRoute:
    """One LLM server: its run tag value, capacity, and the run config that points a run at it."""

    server_key: str
    capacity: int
    url: str | None  # None: the embedded model, no server
    llm_config: Mapping = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        return {LLM_SERVER_TAG: self.server_key}

    def run_config(self) -> dict:
        if self.url is None:
            return {}
        return {"resources": {"llm": {"config": dict(self.llm_config)}}}


def _resource_config(llm: LLMResource, base_url: str) -> dict:
    """The resource's whole config with another base_url.

    Run config replaces a resource's config as a whole (fields it leaves out fall back to the
    class defaults, not to the environment), so every field is spelled out; secrets stay EnvVars
    and appear as their variable's name only.
    """
    config = {}
    for name in type(llm).model_fields:
        value = getattr(llm, name)
        if isinstance(value, dg.EnvVar):
            value = {"env": value.env_var_name}
        if value is not None:
            config[name] = value
    return config | {"base_url": base_url}


def server_routes(llm: LLMResource, env: Mapping[str, str] | None = None) -> list[ServerRoute]:
    """UNWRITTEN_LLM_HOSTS, or the resource's one server (capacity 1) when it is unset."""
    env = os.environ if env is None else env
    backend = llm.backend_name()
    if backend == "embedded":
        return [ServerRoute(llm.server_key(), 1, None)]
    hosts = parse_hosts(env.get(HOSTS_ENV, "")) or [
        LLMHost((llm.base_url or DEFAULT_URLS[backend]).rstrip("/"))
    ]
    return [
        ServerRoute(
            llm.model_copy(update={"base_url": h.url}).server_key(),
            h.capacity,
            h.url,
            _resource_config(llm, h.url),
        )
        for h in hosts
    ]


def route_data_types(
    data_types: Sequence[str], routes: Sequence[ServerRoute]
) -> dict[str, ServerRoute]:
    """Each data type's server, spread by capacity (lib/scaleout/hosts.py: assign_hosts)."""
    by_url = {r.url or r.server_key: r for r in routes}
    hosts = [LLMHost(url, r.capacity) for url, r in by_url.items()]
    return {t: by_url[h.url] for t, h in assign_hosts(data_types, hosts).items()}


def host_limits(routes: Sequence[ServerRoute]) -> dict[str, int]:
    """Run-queue limit per server tag value, for the rendered instance config."""
    return {r.server_key: r.capacity for r in routes}
