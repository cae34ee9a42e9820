"""`/plan QUESTION` and `/call FILE` in the REPL, through the chat's IO: the plan's steps as
notices, the consent questions answered on the input line (y / n / a)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from airochat.domain.events import ChatEvent, Done
from airochat.domain.rewoo import Step, consent_answer, one_line, printable
from airochat.domain.tools_file import ToolsFile, load_tools_file
from airochat.services.chat import Chat
from airochat.services.chat_io import ChatIO
from airochat.services.plans import (
    Answer,
    Consent,
    StepResult,
    read_plan,
    run_plan,
    side_asker,
)

PlayTurn = Callable[[Iterator[ChatEvent]], None]


def ask_io(io: ChatIO) -> Callable[[str], Answer]:
    def ask(question: str) -> Answer:
        while True:
            io.notice(printable(question, 400) + " · allow? y / n / a (all)")
            said = io.read_message()
            if said is None:
                return "no"
            answer = consent_answer(said)
            if answer is not None:
                return answer
            io.error("answer y (yes), n (no) or a (all for this plan)")

    return ask


class IoView:
    def __init__(self, io: ChatIO) -> None:
        self.io = io

    def running(self, step: Step, text: str) -> AbstractContextManager[None]:
        return self._running(step, text)

    @contextmanager
    def _running(self, step: Step, text: str) -> Iterator[None]:
        if step.plan:
            self.io.notice(f"Plan: {printable(step.plan, 200)}")
        self.io.notice(f":evidence{step.evidence}: = {step.tool}[{one_line(text, 160)}] ...")
        yield

    def finished(self, step: Step, result: StepResult) -> None:
        if result.error is not None:
            self.io.error(f"  error ({result.seconds:.1f} s): {printable(result.error, 300)}")
            return
        cut = f", cut to {len(result.evidence)}" if result.truncated else ""
        self.io.notice(f"  {result.chars} characters{cut} in {result.seconds:.1f} s")


def tools_spec(path: str) -> ToolsFile:
    return load_tools_file(Path(path).expanduser()) if path else ToolsFile()


def plan_in_repl(chat: Chat, io: ChatIO, play: PlayTurn, tools_path: str, question: str) -> None:
    """The planning turn is played like any reply (kept, autosaved); then the steps run."""
    from airochat.services.plan_tools import build_tools
    from airochat.services.plans import plan_prompt

    tools = build_tools(tools_spec(tools_path), side_asker(chat))
    play(chat.send(plan_prompt(tools, question)))
    done = chat.last
    if done is None or done.finish_reason == "interrupted":
        return
    plan = read_plan(done.text, tools)
    run = run_plan(plan, done.text, tools, IoView(io), Consent(ask_io(io)))
    io.show(printable(run.answer or ""))
    if run.failed:
        io.error(f"{len(run.failed)} of {len(run.steps)} step(s) failed")


def call_in_repl(
    chat: Chat, io: ChatIO, play: PlayTurn, functions: dict[str, Any], message: str
) -> None:
    """`/call FILE` then a message: the model chooses, the command runs after a yes."""
    import json

    from airochat.domain.functions import functions_prompt, parse_call
    from airochat.services.calls import run_call

    play(chat.send(functions_prompt(functions, message)))
    done: Done | None = chat.last
    if done is None or done.finish_reason == "interrupted":
        return
    call = parse_call(done.text, functions)
    io.notice(printable(json.dumps(call, ensure_ascii=False)))
    ran = run_call(call, functions, Consent(ask_io(io)))
    if ran is None:
        return
    if ran.error is not None:
        io.error(printable(ran.error))
    else:
        io.show(printable(ran.output or ""))
