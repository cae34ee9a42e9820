"""What a catalog entry says about running its model: the longest reply and the temperature
that suit it (a 135M demo model does not need FastChat's 2048-token budget, and answers best
cool). They replace airochat's shipped defaults only: a value set in config.toml, on the
command line or with /set always wins."""

from __future__ import annotations

from dataclasses import replace

from airochat.domain.catalog import CatalogEntry
from airochat.domain.config import Sampling

SHIPPED = Sampling()  # the defaults the shipped config.toml holds too


def fitted_sampling(sampling: Sampling, entry: CatalogEntry | None, given: set[str]) -> Sampling:
    """`sampling` with the entry's reply length and temperature where the user kept airochat's
    defaults (`given`: the settings typed on the command line)."""
    if entry is None:
        return sampling
    changes: dict[str, object] = {}
    if entry.reply and "max_tokens" not in given and sampling.max_tokens == SHIPPED.max_tokens:
        changes["max_tokens"] = entry.reply
    keep_temperature = "temperature" in given or sampling.temperature != SHIPPED.temperature
    if entry.temperature is not None and not keep_temperature:
        changes["temperature"] = entry.temperature
    return replace(sampling, **changes) if changes else sampling  # type: ignore[arg-type]


def fitted_system(system: str | None, entry: CatalogEntry | None) -> str | None:
    """The system prompt: the user's (`system`, from --system or config.toml), else none at
    all for an entry with system=none, else None (the template's default)."""
    if system is None and entry is not None and entry.no_system:
        return ""
    return system
