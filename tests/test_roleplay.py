"""A roleplay scene played in the real REPL: opening, turns, /me, /as, /scene, /next, /regen, save."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from tests.test_repl import PROMPT, STATS, show_prompt, spawn

SCENES = Path(__file__).resolve().parent.parent / "configs" / "scenes"


def turn(child: pexpect.spawn, line: str) -> None:
    child.send(line + "\r")
    child.expect(STATS)
    child.expect_exact(PROMPT)


@pytest.mark.slow
def test_scene_with_the_demo_model(demo_gguf: Path, tmp_path: Path) -> None:
    child = spawn(
        "gemma3-270m",
        "--scene",
        str(SCENES / "orchard-cafe.yaml"),
        "--max-tokens",
        "24",
        "--threads",
        "2",
        "--seed",
        "5",
        "--temperature",
        "0.7",
    )
    # spawn() waited for the prompt, so the opening turn has been played already
    text = "USER:" + show_prompt(child)
    assert text.startswith("USER: Characters:\n- Professor Quill, a pompous barn owl")
    assert "- USER/Sam - don't generate any speech or actions on behalf of Sam" in text
    turn(child, '"Are the figs ripe yet?"')
    child.send("/scene\r")
    child.expect("Figs at the orchard cafe")
    child.expect_exact(PROMPT)
    turn(child, "/me sniffs the bread")
    child.send('/as Bruno "Fresh from the oven!"\r')
    child.expect('Bruno: "Fresh from the oven!"')
    child.expect_exact(PROMPT)
    turn(child, "/regen")
    text = show_prompt(child)
    assert "*sniffs the bread* ASSISTANT:" in text
    saved = tmp_path / "scene-session.json"
    child.send(f"/save {saved}\r")
    child.expect(r"Saved \d+ exchange")
    child.expect_exact(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    data = json.loads(saved.read_text())
    assert data["scene"]["title"] == "Figs at the orchard cafe"
    assert [t["message"] for t in data["turns"]][1:] == [
        '"Are the figs ripe yet?"',
        "*sniffs the bread*",
    ]


def test_single_mode_next_and_resume(tiny_gguf: Path, tmp_path: Path) -> None:
    session = tmp_path / "market.json"
    child = spawn(
        str(tiny_gguf),
        "--scene",
        str(SCENES / "clockwork-market.yaml"),
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "--threads",
        "1",
        "--session",
        str(session),
        "--ctx",
        "2048",
    )
    assert show_prompt(child).rstrip().split("ASSISTANT: ")[1].startswith("Oskar Venn:")
    child.send("/next lady ferrow\r")
    child.expect("Lady Ferrow answers next")
    child.expect_exact(PROMPT)
    turn(child, "How much?")
    assert "How much? ASSISTANT: Lady Ferrow:" in show_prompt(child)
    child.send("/next Nobody\r")
    child.expect("name a character: one of")
    child.expect_exact(PROMPT)
    child.send("/sce\t")  # a scene's own commands Tab-complete (they did not)
    child.expect("ne")  # the redraw writes only the completed remainder
    child.sendcontrol("c")
    child.expect_exact(PROMPT)
    child.close(force=True)
    # resume: the scene comes back from the session file
    child = spawn(
        str(tiny_gguf),
        "--session",
        str(session),
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "--threads",
        "1",
        "--ctx",
        "2048",
    )
    child.send("/scene\r")
    child.expect("Bargains at the clockwork market")
    child.expect_exact(PROMPT)
    turn(child, "And you?")
    assert "And you? ASSISTANT: Oskar Venn:" in show_prompt(child)  # round robin goes on
    child.close(force=True)
