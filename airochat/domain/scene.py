"""Multi-character roleplay scenes in the shape the airoboros models were trained on.

The first user turn lists the characters (and the user, whom the model must never voice), the
rules, the setting and the opening instruction. Stop strings keep the model out of the user's
lines; in `ensemble` mode one reply voices several characters, in `single` mode one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airochat.domain.yaml_text import YamlError, read_yaml_file
from airochat.errors import InputFileError

_TOP = {"title", "user", "characters", "rules", "setting", "opening", "mode", "extensions"}
_CHAR = {"name", "description", "card", "personality", "scenario", "extensions"}
_USER = {"name", "persona"}
_SPEAKER = re.compile(r"^\*?\s*([A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,3})\s*:")


class SceneError(InputFileError):
    pass


@dataclass
class Character:
    name: str
    description: str = ""
    card: str | None = None
    personality: str = ""
    scenario: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scene:
    title: str
    user: str
    characters: list[Character]
    setting: str = ""
    opening: str = ""
    rules: list[str] = field(default_factory=list)
    mode: str = "ensemble"
    persona: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.characters]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "user": {"name": self.user}}
        if self.persona:
            out["user"]["persona"] = self.persona
        out["characters"] = [
            {k: v for k, v in asdict(c).items() if v not in (None, "", {})} for c in self.characters
        ]
        for key in ("rules", "setting", "opening", "extensions"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["mode"] = self.mode
        return out


def _unknown(keys: Any, allowed: set[str], where: str) -> None:
    for key in keys:
        if key not in allowed:
            raise SceneError(
                f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
            )


def _text(value: Any, what: str, where: str) -> str:
    """A scalar the scene uses as text: strings as they are, numbers spelled; anything else
    (a mapping, a list) is a mistake worth naming."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SceneError(f"{where}: {what} should be text, not a {type(value).__name__}")
    return str(value)


def _user(data: dict[str, Any], where: str) -> tuple[str, str]:
    user = data.get("user", {"name": "User"})
    if isinstance(user, str):
        user = {"name": user}
    if not isinstance(user, dict):
        raise SceneError(f"{where}: user is a name or a mapping with name and persona")
    _unknown(user, _USER, f"{where}: user")
    name = _text(user.get("name"), "user name", where).strip()
    if not name:
        raise SceneError(f"{where}: user needs a name")
    return name, _text(user.get("persona"), "user persona", where)


def _character(raw: Any, i: int, where: str, card_loader: Any) -> Character:
    at = f"{where}: character {i + 1}"
    if not isinstance(raw, dict):
        raise SceneError(f"{at} is not a mapping")
    _unknown(raw, _CHAR, at)
    fields = dict(raw)
    if fields.get("card") and card_loader is not None:
        fields = {**card_loader(_text(fields["card"], "card", at)), **fields}  # scene wins
    extensions = fields.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise SceneError(f"{at}: extensions should be a mapping")
    name = _text(fields.get("name"), "name", at).strip()
    if not name:
        raise SceneError(f"{at} needs a name")
    return Character(
        name=name,
        description=_text(fields.get("description"), "description", at),
        card=_text(fields.get("card"), "card", at) or None,
        personality=_text(fields.get("personality"), "personality", at),
        scenario=_text(fields.get("scenario"), "scenario", at),
        extensions=extensions,
    )


def parse_scene(data: Any, where: str, card_loader: Any = None) -> Scene:
    if not isinstance(data, dict):
        raise SceneError(f"{where}: a scene is a mapping of keys (title, user, characters, ...)")
    _unknown(data, _TOP, where)
    user, persona = _user(data, where)
    raw_chars = data.get("characters") or []
    if not isinstance(raw_chars, list):
        raise SceneError(f"{where}: characters is a list of mappings (name, description)")
    chars = [_character(raw, i, where, card_loader) for i, raw in enumerate(raw_chars)]
    if not chars:
        raise SceneError(f"{where}: a scene needs at least one character")
    mode = data.get("mode", "ensemble")
    if mode not in ("ensemble", "single"):
        raise SceneError(f"{where}: mode is ensemble or single, not {mode!r}")
    rules = data.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise SceneError(f"{where}: rules is a list of lines")
    extensions = data.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise SceneError(f"{where}: extensions should be a mapping")
    return Scene(
        title=_text(data.get("title"), "title", where),
        user=user,
        persona=persona,
        characters=chars,
        setting=_text(data.get("setting"), "setting", where).strip(),
        opening=_text(data.get("opening"), "opening", where).strip(),
        rules=rules,
        mode=mode,
        extensions=extensions,
    )


def load_scene(path: Path, card_loader: Any = None) -> Scene:
    try:
        data = read_yaml_file(path, "scene file")
    except YamlError as exc:
        raise SceneError(str(exc)) from None
    return parse_scene(data, str(path), card_loader)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"


def render_opening(scene: Scene) -> str:
    """The first user turn, exactly as the airoboros cards' multi-character example."""
    user = scene.user
    lines = ["Characters:"]
    lines += [f"- {c.name}, {_one_line(c.description)}" for c in scene.characters]
    lines.append(f"- USER/{user} - don't generate any speech or actions on behalf of {user}")
    lines += ["", "Rules:"]
    lines += [f"- {r}" for r in scene.rules]
    lines.append(
        f"- only generate text and actions on behalf of {_either(scene.names)} "
        "and never anyone else"
    )
    parts = ["\n".join(lines)]
    if scene.setting:
        parts.append(scene.setting)
    if scene.opening:
        parts.append(scene.opening)
    return "\n\n".join(parts)


def stop_strings(scene: Scene, speaker: str | None = None) -> list[str]:
    """The user's lines, spoken or acted, at the start of any line; in single mode also the
    other characters' lines. (The reply's own start counts as a line start.)"""
    user = scene.user
    stops = ["USER:", f"\n{user}:", f"\n*{user} ", f"\n{user} "]
    if scene.mode == "single" and speaker:
        stops += [f"\n{n}:" for n in scene.names if n != speaker]
    return stops


def unknown_speakers(scene: Scene, reply: str) -> list[str]:
    """Names that speak in the reply but are not in the cast (kept, but worth flagging)."""
    known = {*scene.names, scene.user, "USER"}
    found = []
    for line in reply.splitlines():
        m = _SPEAKER.match(line.strip())
        if m and m.group(1) not in known and m.group(1) not in found:
            found.append(m.group(1))
    return found
