from __future__ import annotations

import pytest

from airochat.domain.transcript import VERSION, SavedChat, SavedTurn, SessionFileError, parse


def saved() -> SavedChat:
    return SavedChat(
        "m",
        "airoboros",
        "S.",
        True,
        {"temperature": 0.5},
        [SavedTurn("hi", "hello", [5, 6], "stop")],
    )


def test_round_trip() -> None:
    assert parse(saved().to_json(), "f") == saved()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=VERSION + 1), "newer airochat"),
        (lambda d: d.update(version=0), "bad version"),
        (lambda d: d.update(schema="x"), "not an airochat session file"),
        (lambda d: d.pop("system"), "'system' is missing"),
        (lambda d: d.update(history="yes"), "'history' is missing or has the wrong type"),
    ],
)
def test_bad_files(mutate: object, message: str) -> None:
    data = saved().to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(SessionFileError, match=message):
        parse(data, "f")


@pytest.mark.parametrize("ids", [["a"], [-1, 5], [1.5], "x"])
def test_bad_token_ids_are_dropped_not_refused(ids: object) -> None:
    """Ids a loader cannot use (a server's -1) are dropped: the resume tokenizes the text."""
    data = saved().to_json()
    data["turns"][0]["reply_tokens"] = ids
    turn = parse(data, "f").turns[0]
    assert turn.reply == "hello" and turn.reply_tokens == []


def test_version_1_file_is_upgraded_in_memory() -> None:
    """A v1 file (scene under `extra`) loads; the next save writes the current version."""
    scene = {"title": "T", "user": {"name": "Jon"}, "characters": [{"name": "Ayla"}]}
    v1 = {**saved().to_json(), "version": 1, "extra": {"scene": scene}}
    loaded = parse(v1, "f")
    assert loaded.scene == scene and loaded.turns == saved().turns
    assert loaded.to_json()["version"] == VERSION and "extra" not in loaded.to_json()
