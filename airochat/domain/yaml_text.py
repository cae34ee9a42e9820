"""YAML from files a user or a download supplies (scenes, function lists): safe_load without
aliases. An anchor used a million times is a few lines of text and gigabytes once expanded
(the "billion laughs"); no scene or function list needs one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from airochat.errors import InputFileError

MAX_YAML_BYTES = 4 << 20


class YamlError(InputFileError):
    pass


class _NoAliases(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.YAMLError(f"aliases (*{event.anchor}) are not allowed")
        return super().compose_node(parent, index)


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML (JSON is YAML too); any problem is one line naming `where`."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlError(f"{where}: too big ({len(text) >> 20} MiB; the limit is 4 MiB)")
    try:
        return yaml.load(text, Loader=_NoAliases)
    except yaml.YAMLError as exc:
        raise YamlError(f"{where}: not readable YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise YamlError(f"{where}: nested too deeply") from None


def read_yaml_file(path: Path, kind: str) -> Any:
    """A YAML file the user names (`kind`: "scene file"): a regular file within the size limit,
    UTF-8, parsed as above; any problem is one line."""
    try:
        if not path.is_file():
            what = f"no such {kind}" if not path.exists() else "not a regular file"
            raise YamlError(f"{what}: {path}")
        if path.stat().st_size > MAX_YAML_BYTES:
            raise YamlError(f"{path}: too big for a {kind} (the limit is 4 MiB)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise YamlError(f"cannot read {path}: {exc.strerror}") from None
    return load_yaml(text, str(path))
