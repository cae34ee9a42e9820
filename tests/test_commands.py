"""The chat service, the slash commands and the REPL loop in-process, on the scripted engine:
no terminal, no model file, milliseconds per test. (The real engine and the real terminal have
their own tests: test_chat.py, test_repl.py.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airochat.domain.config import Sampling
from airochat.domain.events import Done, Notice
from airochat.domain.scene import parse_scene
from airochat.domain.templates import get_template
from airochat.errors import ContextOverflowError
from airochat.services import session_file
from airochat.services.chat import Chat
from airochat.services.kept_chat import KeptChat
from airochat.services.repl import Repl
from airochat.services.roleplay import SceneTurns
from airochat.services.session_file import SessionFile
from tests.scripted_engine import ScriptedEngine

SAMPLING = Sampling(temperature=0.0, max_tokens=64)
SCENE = {
    "title": "Market",
    "user": {"name": "Jon"},
    "characters": [{"name": "Ayla", "description": "a trader"}, {"name": "Bryn"}],
    "mode": "single",
}


@dataclass
class ListIO:
    """A ChatIO that reads scripted lines and records what would be on screen."""

    lines: list[str]
    out: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    commands: Callable[[], list[str]] = lambda: []
    _reply: str = ""

    def read_message(self, default: str = "") -> str | None:
        return self.lines.pop(0) if self.lines else None

    def edit_text(self, text: str) -> str | None:
        return text.replace("hello", "goodbye")

    def stream(self, text: str) -> None:
        self._reply += text

    def end_reply(self, summary: str, cut: bool = False) -> None:
        self.replies.append(self._reply)
        self._reply = ""

    def show(self, text: str) -> None:
        self.out.append(text)

    def show_terms(self, rows: list[tuple[str, str]]) -> None:
        self.out.append("\n".join(f"{term} {text}" for term, text in rows))

    def notice(self, text: str) -> None:
        self.out.append(text)

    def error(self, text: str) -> None:
        self.errors.append(text)

    def attach(self, status: Callable[[], str], commands: Callable[[], list[str]]) -> None:
        self.commands = commands

    def close(self) -> None:
        pass


def make_chat(engine: ScriptedEngine | None = None, scene: dict[str, object] | None = None) -> Chat:
    policy = SceneTurns(parse_scene(scene, "test")) if scene else None
    return Chat(
        engine or ScriptedEngine(),
        get_template("airoboros"),
        "S.",
        SAMPLING,
        model_name="scripted",
        policy=policy,
    )


def play(chat: Chat, *lines: str, session: Path | None = None) -> ListIO:
    io = ListIO(list(lines))
    Repl(KeptChat(chat, SessionFile(session) if session else None), io).run()
    return io


def test_second_turn_reads_only_the_new_turn() -> None:
    engine = ScriptedEngine(["One.", "Two."])
    chat = make_chat(engine)
    first = next(e for e in chat.send("hi") if isinstance(e, Done))
    second = next(e for e in chat.send("again") if isinstance(e, Done))
    assert first.prompt_eval_tokens == first.prompt_tokens
    new_turn = len("</s>") - 3 + len("USER: again ASSISTANT: ")  # EOS is one token
    assert second.prompt_eval_tokens == new_turn
    assert chat.prompt_text() == "S. USER: hi ASSISTANT: One.</s>USER: again ASSISTANT: Two.</s>"


def test_preview_is_exactly_what_send_sends() -> None:
    engine = ScriptedEngine(["Hi."])
    chat = make_chat(engine)
    list(chat.send("first"))
    preview = chat.preview("second")
    list(chat.send("second"))
    sent = engine.calls[-1]
    assert engine.spell(sent.prompt) == preview.prompt
    assert sent.stop == preview.stops and len(sent.prompt) == preview.tokens


@pytest.mark.parametrize("template", ["airoboros", "chatml"])
def test_scene_preview_stops_match_the_real_turn(template: str) -> None:
    """The bug: --print-prompt listed `USER:` for a chatml scene, which the real turn never
    used. Now both come from one plan."""
    engine = ScriptedEngine(["Ayla: Welcome."])
    chat = make_chat(engine, SCENE)
    chat.set_template(template)
    preview = chat.preview("I wave.")
    list(chat.send("I wave."))
    assert engine.calls[-1].stop == preview.stops
    assert ("USER:" in preview.stops) == (template == "airoboros")
    assert preview.prompt.endswith("Ayla:")  # single mode: the speaker opens the reply


def test_oversized_message_leaves_the_chat_whole() -> None:
    chat = make_chat(ScriptedEngine(["ok"], n_ctx=200))
    list(chat.send("one"))
    list(chat.send("two"))
    before = chat.prompt_text()
    with pytest.raises(ContextOverflowError, match="the chat is unchanged"):
        chat.send("x" * 300)
    assert chat.prompt_text() == before and len(chat.conversation.turns) == 2


def test_full_context_drops_oldest_then_keeps_going() -> None:
    chat = make_chat(ScriptedEngine(["ok"], n_ctx=160))
    for word in ("alpha", "bravo", "charlie", "delta"):
        events = list(chat.send(word * 3))
    assert any(isinstance(e, Notice) for e in events)
    text = chat.prompt_text()
    assert text.startswith("S. USER: ") and "alpha" not in text and "delta" in text


def test_repl_commands_undo_regen_edit_system() -> None:
    engine = ScriptedEngine(["A.", "B.", "C.", "D."])
    chat = make_chat(engine)
    io = play(chat, "hello", "/undo", "hello", "/regen", "/edit", "/system Be brief.", "/prompt")
    assert io.replies == ["A.", "B.", "C.", "D."]
    assert io.out[-1] == "Be brief. USER: goodbye ASSISTANT: D.</s>"
    assert not io.errors


def test_unknown_and_ambiguous_commands_never_reach_the_model() -> None:
    engine = ScriptedEngine()
    io = play(make_chat(engine), "/frob", "/s", "//slash text")
    assert "unknown command /frob" in io.errors[0]
    assert "ambiguous" in io.errors[1]
    assert len(engine.calls) == 1 and engine.spell(engine.calls[0].prompt).endswith(
        "USER: /slash text ASSISTANT: "
    )


def test_scene_commands_are_the_completions_only_in_a_scene() -> None:
    """The bug: /as, /me, /next, /scene never Tab-completed (the list came from the plain
    command class). The completion list is now the commands in force."""
    plain = ListIO([])
    Repl(KeptChat(make_chat()), plain)
    scene = ListIO([])
    Repl(KeptChat(make_chat(scene=SCENE)), scene)
    assert {"as", "me", "next", "scene"} <= set(scene.commands())
    assert not {"as", "me", "next", "scene"} & set(plain.commands())


def test_scene_opening_speakers_and_regen_same_speaker() -> None:
    engine = ScriptedEngine(["Welcome.", "Hm.", "Again."])
    chat = make_chat(engine, SCENE)
    io = play(chat, "/next Bryn", "I wave.", "/regen", "/next", "/as Ayla Fresh bread!")
    prompts = [engine.spell(c.prompt) for c in engine.calls]
    assert prompts[0].startswith("S. USER: Characters:\n- Ayla, a trader") and prompts[0].endswith(
        "Ayla:"
    )
    assert prompts[1].endswith("Bryn:") and prompts[2].endswith("Bryn:")  # regen: same speaker
    assert io.errors == ["name a character: one of Ayla, Bryn"]
    assert chat.conversation.turns[-1].reply.endswith("\nAyla: Fresh bread!")


def test_session_file_round_trip_with_scene(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    chat = make_chat(ScriptedEngine(["Welcome."]), SCENE)
    play(chat, "I wave.", session=path)
    again = make_chat()
    session_file.load(again, path)
    assert again.scene is not None and again.scene.names == ["Ayla", "Bryn"]
    assert again.prompt_text() == chat.prompt_text()


def test_bad_load_leaves_the_chat_and_its_file(tmp_path: Path) -> None:
    """A file that parses but holds a bad value is refused before the chat changes, so the
    next autosave does not write its turns over the user's session."""
    mine, other = tmp_path / "mine.json", tmp_path / "other.json"
    chat = make_chat(ScriptedEngine(["A.", "B."]))
    play(chat, "hello", session=mine)
    session_file.save(chat, other)
    other.write_text(other.read_text().replace('"max_tokens": 64', '"max_tokens": -5'))
    before, saved = chat.prompt_text(), mine.read_text()
    io = play(chat, f"/load {other}", session=mine)
    assert "bad sampling settings" in io.errors[0]
    assert chat.prompt_text() == before and mine.read_text() == saved


def test_full_context_shifts_the_cache_and_reads_only_the_new_turn() -> None:
    """The airoboros first turn is `{system} ` + the later-turn text, so dropping the oldest
    exchange leaves the others' tokens as they were: the engine shifts its cache and the turn
    reads only its own tokens."""
    engine = ScriptedEngine(["ok"], n_ctx=200)
    chat = make_chat(engine)
    for i, word in enumerate(("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf")):
        events = list(chat.send(word * 3))
        read = next(e for e in events if isinstance(e, Done)).prompt_eval_tokens
        if i:  # the new turn, and the EOS that closed the last reply
            assert read <= len(f"USER: {word * 3} ASSISTANT: ") + 1
        notices = [e.text for e in events if isinstance(e, Notice)]
        if notices:
            assert "was kept" in notices[0]
            assert engine.cached[: len(engine.calls[-1].prompt)] == engine.calls[-1].prompt
    assert chat.prompt_text().startswith("S. USER: ")  # the system prompt still opens it


def test_without_shifting_a_quarter_is_freed_and_said() -> None:
    engine = ScriptedEngine(["ok"], n_ctx=200, can_shift=False)
    chat = make_chat(engine)
    notices = []
    for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"):
        notices += [e.text for e in chat.send(word * 3) if isinstance(e, Notice)]
    assert notices and all("freeing a quarter" in n and "read again" in n for n in notices)
    assert len(notices) < 4  # bigger steps: the re-read happens rarely
