from __future__ import annotations

import pytest

from airochat.domain.transcript import SavedChat, SavedTurn, SessionFileError, parse


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
        (lambda d: d.update(version=2), "newer airochat"),
        (lambda d: d.update(schema="x"), "not an airochat session file"),
        (lambda d: d.pop("system"), "'system' is missing"),
        (lambda d: d["turns"][0].update(reply_tokens=["a"]), "reply_tokens must be token ids"),
        (lambda d: d.update(history="yes"), "'history' is missing or has the wrong type"),
    ],
)
def test_bad_files(mutate: object, message: str) -> None:
    data = saved().to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(SessionFileError, match=message):
        parse(data, "f")
