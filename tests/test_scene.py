"""Roleplay scenes: the cards' format byte for byte, stop strings, the filter, character cards."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import pytest
import yaml

from airochat.adapters.cards import CardError, card_character
from airochat.adapters.llama_engine import LlamaEngine
from airochat.domain.scene import (
    SceneError,
    load_scene,
    parse_scene,
    render_opening,
    stop_strings,
    unknown_speakers,
)
from airochat.domain.stops import ReplyText
from tests.conftest import run_cli

CARDS_EXAMPLE = {
    "title": "Grapes at the cafe",
    "user": {"name": "Jon"},
    "characters": [
        {"name": "Yoda", "description": "the ever clever jedi master."},
        {"name": "Homer", "description": "you know, the goofy yellow guy."},
    ],
    "rules": [
        "be sure to use the manerisms and speaking style of the characters correctly",
        "surround character actions with asterisks",
        "always put quotes around words spoken by the characters",
        "use a new line for each character's actions or speech",
        "always prefix actions/speech with the character's name and colon",
    ],
    "setting": "Conversation will revolve around the grapes, in a local cafe with delicious coffee.",
    "opening": "Generate a single interaction between Yoda and Homer to start, with one sentence each.",
}


def test_golden_opening_for_the_cards_yoda_homer_example() -> None:
    assert render_opening(parse_scene(CARDS_EXAMPLE, "t")) == (
        "Characters:\n"
        "- Yoda, the ever clever jedi master.\n"
        "- Homer, you know, the goofy yellow guy.\n"
        "- USER/Jon - don't generate any speech or actions on behalf of Jon\n"
        "\n"
        "Rules:\n"
        "- be sure to use the manerisms and speaking style of the characters correctly\n"
        "- surround character actions with asterisks\n"
        "- always put quotes around words spoken by the characters\n"
        "- use a new line for each character's actions or speech\n"
        "- always prefix actions/speech with the character's name and colon\n"
        "- only generate text and actions on behalf of Yoda or Homer and never anyone else\n"
        "\n"
        "Conversation will revolve around the grapes, in a local cafe with delicious coffee.\n"
        "\n"
        "Generate a single interaction between Yoda and Homer to start, with one sentence each."
    )


def test_three_characters_listed_with_commas() -> None:
    data = {
        **CARDS_EXAMPLE,
        "characters": [*CARDS_EXAMPLE["characters"], {"name": "Ada", "description": "x"}],
    }
    assert "on behalf of Yoda, Homer or Ada and never anyone else" in render_opening(
        parse_scene(data, "t")
    )


def test_stop_strings_per_mode() -> None:
    ensemble = parse_scene(CARDS_EXAMPLE, "t")
    assert stop_strings(ensemble) == ["USER:", "\nJon:", "\n*Jon ", "\nJon "]
    assert not any("Yoda" in s or "Homer" in s for s in stop_strings(ensemble))
    single = parse_scene({**CARDS_EXAMPLE, "mode": "single"}, "t")
    assert stop_strings(single, "Yoda") == ["USER:", "\nJon:", "\n*Jon ", "\nJon ", "\nHomer:"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**CARDS_EXAMPLE, "colour": "red"}, "unknown key 'colour'"),
        (
            {**CARDS_EXAMPLE, "characters": [{"name": "Yoda", "age": 900}]},
            "character 1: unknown key 'age'",
        ),
        ({**CARDS_EXAMPLE, "user": {"name": "Jon", "mood": "x"}}, "user: unknown key 'mood'"),
        ({**CARDS_EXAMPLE, "mode": "solo"}, "mode is ensemble or single"),
        ({**CARDS_EXAMPLE, "characters": []}, "at least one character"),
    ],
)
def test_bad_scenes_name_the_problem(data: dict[str, object], message: str) -> None:
    with pytest.raises(SceneError, match=message):
        parse_scene(data, "scene.yaml")


def test_shipped_example_scenes_load() -> None:
    scenes = sorted((Path(__file__).parent.parent / "configs" / "scenes").glob("*.yaml"))
    assert len(scenes) >= 2
    for path in scenes:
        assert render_opening(load_scene(path)).startswith("Characters:\n- ")


def feed(engine: LlamaEngine, text: str, stops: list[str]) -> ReplyText:
    run = ReplyText(engine, stops)
    for tok in engine.tokenize_text(text):
        run.add(tok)
        if run.stopped:
            break
    run.flush()
    return run


def test_reply_voicing_the_user_mid_reply_is_cut(tiny_engine: LlamaEngine) -> None:
    stops = stop_strings(parse_scene(CARDS_EXAMPLE, "t"))
    run = feed(tiny_engine, 'Yoda: "Hmm."\nJon: "I want grapes."\nHomer: "Mmm."', stops)
    assert run.stopped and run.stopped_by == "\nJon:"
    assert "Jon" not in run.text and run.text.rstrip().endswith('"Hmm."')


def test_reply_that_starts_as_the_user_is_cut_at_once(tiny_engine: LlamaEngine) -> None:
    stops = stop_strings(parse_scene(CARDS_EXAMPLE, "t"))
    run = feed(tiny_engine, "*Jon walks in*\nYoda: hi", stops)
    assert run.stopped and run.text == "" and run.tokens == []


def test_unknown_speakers_flagged() -> None:
    scene = parse_scene(CARDS_EXAMPLE, "t")
    reply = 'Yoda: "Hmm."\nMarge: "Homer!"\n*Homer drools*\nBart: "Eat my shorts."'
    assert unknown_speakers(scene, reply) == ["Marge", "Bart"]


# -- character cards -------------------------------------------------------------------------


def png_with_chunks(chunks: dict[str, str]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for key, value in chunks.items():
        out += chunk(b"tEXt", key.encode() + b"\0" + value.encode())
    out += chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b"")
    return out


def v2(name: str, **extra: object) -> dict[str, object]:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": name,
            "description": f"{name} the\nbrave",
            "personality": "bold",
            "scenario": "a tavern",
            "first_mes": "Hello!",
            "tags": ["hero"],
            **extra,
        },
    }


def b64(card: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(card).encode()).decode()


def test_card_from_json_keeps_unused_fields(tmp_path: Path) -> None:
    f = tmp_path / "ayla.json"
    f.write_text(json.dumps(v2("Ayla")))
    char = card_character(f)
    assert char["name"] == "Ayla" and char["description"] == "Ayla the brave"
    assert char["personality"] == "bold" and char["scenario"] == "a tavern"
    assert char["extensions"]["first_mes"] == "Hello!" and char["extensions"]["tags"] == ["hero"]
    assert char["extensions"]["spec"] == "chara_card_v2"


def test_card_from_png_prefers_ccv3(tmp_path: Path) -> None:
    f = tmp_path / "card.png"
    v3 = {**v2("Bryn"), "spec": "chara_card_v3", "spec_version": "3.0"}
    f.write_bytes(png_with_chunks({"chara": b64(v2("Old Bryn")), "ccv3": b64(v3)}))
    char = card_character(f)
    assert char["name"] == "Bryn" and char["extensions"]["spec"] == "chara_card_v3"
    g = tmp_path / "v2.png"
    g.write_bytes(png_with_chunks({"chara": b64(v2("Cato"))}))
    assert card_character(g)["name"] == "Cato"


def test_bad_cards(tmp_path: Path) -> None:
    f = tmp_path / "plain.png"
    f.write_bytes(png_with_chunks({"Comment": "hi"}))
    with pytest.raises(CardError, match="no chara/ccv3 chunk"):
        card_character(f)
    f.write_bytes(png_with_chunks({"chara": "!!!not base64"}))
    with pytest.raises(CardError, match="not base64 JSON"):
        card_character(f)
    f.write_bytes(png_with_chunks({"chara": b64(v2("X"))})[:40])
    with pytest.raises(CardError, match="truncated"):
        card_character(f)


def test_scene_card_field_fills_a_character(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "ayla.png").write_bytes(png_with_chunks({"chara": b64(v2("Ayla"))}))
    scene_file = tmp_path / "s.yaml"
    scene_file.write_text(
        yaml.safe_dump(
            {
                **CARDS_EXAMPLE,
                "characters": [{"card": "cards/ayla.png"}, {"name": "Homer", "description": "d"}],
            }
        )
    )
    proc = run_cli("ask", "gemma3-270m", "--scene", str(scene_file), "--print-prompt")
    assert proc.returncode == 0, proc.stderr
    assert "- Ayla, Ayla the brave\n" in proc.stdout


def test_scene_import_command(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.png"
    a.write_text(json.dumps(v2("Ayla")))
    b.write_bytes(png_with_chunks({"chara": b64(v2("Bryn"))}))
    out = tmp_path / "scene.yaml"
    proc = run_cli("scene", "import", str(a), str(b), "-o", str(out), "--user", "Jon")
    assert proc.returncode == 0, proc.stderr
    scene = load_scene(out)
    assert scene.names == ["Ayla", "Bryn"] and scene.user == "Jon"
    assert scene.setting == "a tavern"
    assert scene.characters[0].extensions["first_mes"] == "Hello!"
    again = run_cli("scene", "import", str(a), "-o", str(out))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_ask_scene_print_prompt_json(tiny_gguf: Path, tmp_path: Path) -> None:
    scene_file = tmp_path / "s.yaml"
    scene_file.write_text(yaml.safe_dump({**CARDS_EXAMPLE, "mode": "single"}))
    proc = run_cli(
        "ask",
        str(tiny_gguf),
        "--scene",
        str(scene_file),
        "--print-prompt",
        "--json",
        "--system",
        "S.",
    )
    out = json.loads(proc.stdout)
    assert out["prompt"].startswith("S. USER: Characters:\n- Yoda, the ever clever jedi master.")
    assert out["prompt"].endswith("with one sentence each. ASSISTANT: Yoda:")
    assert out["stop"] == ["USER:", "\nJon:", "\n*Jon ", "\nJon ", "\nHomer:"]
