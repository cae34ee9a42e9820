"""Where airochat's files live: packaged data, and the user's config/data/cache directories."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "airochat"
_PACKAGE = Path(__file__).resolve().parent.parent


def data_file(name: str) -> Path:
    """A file shipped with airochat (`configs/...`, `models.txt`): inside the wheel under `_data`,
    or at the top of the source checkout in an editable install."""
    packaged = _PACKAGE / "_data" / name
    if packaged.exists():
        return packaged
    return _PACKAGE.parent / name


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP))
