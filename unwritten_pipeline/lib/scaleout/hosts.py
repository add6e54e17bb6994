"""The LLM servers a deployment may use, how many generation runs each takes, and the fan-out.

`UNWRITTEN_LLM_HOSTS="http://gpu-a:11434=2,http://gpu-b:11434"` lists servers with their capacity
(concurrent generation runs; default 1). Empty: the single server of `UNWRITTEN_LLM_URL` (or the
backend's default) with capacity 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

HOSTS_ENV = "UNWRITTEN_LLM_HOSTS"


@dataclass(frozen=True)
class LLMHost:
    url: str
    capacity: int = 1


def parse_hosts(text: str, *, source: str = HOSTS_ENV) -> list[LLMHost]:
    """`url[=capacity],url[=capacity]` → hosts; refuses bad URLs, capacities and duplicates."""
    hosts: list[LLMHost] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        url, _, capacity_text = item.partition("=")
        url = url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{source}: {url!r} is not an http(s) URL (expected url[=capacity])")
        try:
            capacity = int(capacity_text) if capacity_text.strip() else 1
        except ValueError:
            raise ValueError(
                f"{source}: capacity of {url} is {capacity_text!r}, not a whole number"
            ) from None
        if capacity < 1:
            raise ValueError(f"{source}: capacity of {url} must be at least 1, got {capacity}")
        if any(h.url == url for h in hosts):
            raise ValueError(f"{source}: {url} is listed twice")
        hosts.append(LLMHost(url, capacity))
    return hosts


def assign_hosts(items: Sequence[str], hosts: Sequence[LLMHost]) -> dict[str, LLMHost]:
    """Spread items over hosts in proportion to capacity, in a stable order.

    Each item goes to the host with the lowest load (assigned / capacity), ties to the host listed
    first, so a night's seven data types land the same way every night.
    """
    if not hosts:
        raise ValueError("no LLM hosts to assign to")
    load = {h.url: 0 for h in hosts}
    assignment = {}
    for item in items:
        host = min(hosts, key=lambda h: load[h.url] / h.capacity)
        load[host.url] += 1
        assignment[item] = host
    return assignment
