"""Running a reWOO plan: the model plans, airochat calls the tools, the answer is the evidence
the plan names.

Steps run in order. Each input has the earlier evidence substituted for its references
(KnowledgeModel instead gets long evidence as BEGININPUT blocks, the cards' closed-context
format). Evidence over `max_evidence` characters is cut, and the step says so. A step that
fails gives an error evidence and the plan goes on; a step that runs a command, reaches the
network or an MCP server runs only after the user said yes (or all, or `--yes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal, Protocol

from airochat.domain.closed_context import Document, closed_context
from airochat.domain.events import Done
from airochat.domain.rewoo import (
    CARD_TOOLS,
    MAX_STEPS,
    Plan,
    Step,
    parse_plan,
    planning_prompt,
    references,
    substitute,
)
from airochat.errors import AirochatError, ExitCode, UsageError
from airochat.services.chat import Chat

MAX_EVIDENCE_CHARS = 8000
INLINE_CHARS = 300  # evidence this short, on one line, goes into a KnowledgeModel question

Reach = Literal["", "network", "command", "mcp"]
Answer = Literal["yes", "no", "all"]


class PlanStopped(AirochatError):
    """The user declined a step, or stopped the model: the rest of the plan did not run."""


class PlanInterrupted(PlanStopped):
    """Ctrl-C during a step's answer from the model: the command ends as Ctrl-C does."""

    exit_code = ExitCode.INTERRUPTED


@dataclass(frozen=True)
class Call:
    raw: str  # the input as the plan wrote it
    text: str  # with the evidence substituted
    evidence: Mapping[int, str]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    run: Callable[[Call], str]
    reaches: Reach = ""  # what consent is asked for ("" : nothing outside the process)
    shows: Callable[[Call], str] | None = None  # what the consent question shows it will do


@dataclass
class StepResult:
    evidence_id: int
    tool: str
    input: str
    evidence: str = ""
    seconds: float = 0.0
    error: str | None = None
    truncated: bool = False
    chars: int = 0  # the evidence's length before any cut

    def to_json(self) -> dict[str, object]:
        return {
            "evidence_id": self.evidence_id,
            "tool": self.tool,
            "input": self.input,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "truncated": self.truncated,
            "chars": self.chars,
        }


@dataclass
class PlanRun:
    plan: Plan
    reply: str
    steps: list[StepResult] = field(default_factory=list)
    answer: str | None = None

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.error is not None]

    def to_json(self) -> dict[str, object]:
        return {
            "plan": list(self.plan.plans),
            "steps": [s.to_json() for s in self.steps],
            "answer": self.answer,
        }


class PlanView(Protocol):
    """Where a running plan is shown (the terminal for `ask`, the REPL's IO)."""

    def running(self, step: Step, text: str) -> AbstractContextManager[None]:
        """Shown while the step runs (a spinner): the tool and its input, substituted."""
        ...

    def finished(self, step: Step, result: StepResult) -> None: ...


class Consent:
    """yes / no / all for this plan; `ask` is None where nobody can be asked."""

    def __init__(self, ask: Callable[[str], Answer] | None, yes: bool = False) -> None:
        self.ask = ask
        self.all = yes

    def allow(self, question: str) -> bool:
        if self.all:
            return True
        if self.ask is None:
            return False
        said = self.ask(question)
        if said == "all":
            self.all = True
        return said != "no"


def tool_lines(tools: Mapping[str, Tool]) -> list[tuple[str, str]]:
    return [(t.name, t.description) for t in tools.values()]


def plan_prompt(tools: Mapping[str, Tool], question: str) -> str:
    return planning_prompt(tool_lines(tools), question)


def read_plan(reply: str, tools: Mapping[str, Tool], max_steps: int = MAX_STEPS) -> Plan:
    return parse_plan(reply, list(tools), max_steps)


def needs_consent(plan: Plan, tools: Mapping[str, Tool]) -> list[Step]:
    return [s for s in plan.steps if tools[s.tool].reaches]


def require_consent(plan: Plan, tools: Mapping[str, Tool], consent: Consent) -> None:
    """Refuse, before anything runs, a plan that would need a yes nobody can give."""
    steps = needs_consent(plan, tools)
    if steps and consent.ask is None and not consent.all:
        which = ", ".join(f"{s.tool} (line {s.line})" for s in steps)
        raise UsageError(
            f"this plan runs commands or reaches the network or an MCP server ({which}) and "
            "there is no terminal to ask: give --yes to allow it"
        )


def run_plan(
    plan: Plan,
    reply: str,
    tools: Mapping[str, Tool],
    view: PlanView,
    consent: Consent,
    max_evidence: int = MAX_EVIDENCE_CHARS,
) -> PlanRun:
    """Every step in order, then the answer: the Answer line with its evidence substituted."""
    run = PlanRun(plan, reply)
    evidence: dict[int, str] = {}
    for step in plan.steps:
        tool = tools[step.tool]
        text = substitute(step.input, lambda n: evidence.get(n, ""))
        call = Call(step.input, text, dict(evidence))
        if tool.reaches:
            shown = tool.shows(call) if tool.shows else f"{tool.name}[{text}]"
            if not consent.allow(f"step :evidence{step.evidence}: {tool.reaches}: {shown}"):
                raise PlanStopped(
                    f"the plan stopped at :evidence{step.evidence}: ({tool.name}): not allowed"
                )
        result = StepResult(step.evidence, tool.name, text)
        with view.running(step, text):
            _run_step(tool, call, result, max_evidence)
        evidence[step.evidence] = result.evidence
        run.steps.append(result)
        view.finished(step, result)
    run.answer = substitute(plan.answer, lambda n: evidence.get(n, ""))
    return run


def _run_step(tool: Tool, call: Call, result: StepResult, max_evidence: int) -> None:
    start = time.monotonic()
    try:
        text = tool.run(call)
    except PlanStopped:
        raise
    except AirochatError as exc:  # ToolError among them
        result.error = " ".join(str(exc).split()) or type(exc).__name__
        text = f"(no evidence: {result.error})"
    result.seconds = time.monotonic() - start
    result.chars = len(text)
    if len(text) > max_evidence:
        text = text[:max_evidence]
        result.truncated = True
        text += f"\n[evidence cut at {max_evidence} of {result.chars} characters]"
    result.evidence = text


class ToolError(AirochatError):
    """A tool could not give its evidence (or a tools file's tools could not be had); the
    message is the error the user sees."""


# -- the tools ---------------------------------------------------------------------------------


Ask = Callable[[str], Done]  # one closed question to the loaded model, its reply


def knowledge_tool(ask_model: Ask) -> Tool:
    def run(call: Call) -> str:
        done = ask_model(knowledge_prompt(call))
        if done.finish_reason == "interrupted":
            raise PlanInterrupted("the plan stopped: the model's answer was interrupted")
        return done.text.strip()

    return Tool("KnowledgeModel", CARD_TOOLS["KnowledgeModel"], run)


def knowledge_prompt(call: Call) -> str:
    """The question with short evidence written in; long evidence as BEGININPUT blocks."""
    docs: list[Document] = []

    def value(n: int) -> str:
        text = call.evidence.get(n, "")
        if len(text) <= INLINE_CHARS and "\n" not in text.strip():
            return text.strip()
        return f":evidence{n}:"

    question = substitute(call.raw, value)
    for n in references(call.raw):
        text = call.evidence.get(n, "")
        if not (len(text) <= INLINE_CHARS and "\n" not in text.strip()):
            docs.append(Document(text, {"evidence": f":evidence{n}:"}))
    if not docs:
        return question
    return closed_context(docs, question, {})


def side_asker(chat: Chat) -> Ask:
    """Closed questions to the chat's model, each alone (no history), never kept in the
    chat: the plan's own turn is."""
    side = Chat(
        chat.engine,
        chat.template,
        chat.conversation.system,
        chat.sampling,
        history=False,
        model_name=chat.model_name,
        cancel=chat.cancel,
    )

    def ask(message: str) -> Done:
        side.reset()
        return _last(side.send(message))

    return ask


def _last(events: Iterator[object]) -> Done:
    done: Done | None = None
    for event in events:
        if isinstance(event, Done):
            done = event
    assert done is not None
    return done


def make_plan(chat: Chat, tools: Mapping[str, Tool], question: str) -> Done:
    """The planning turn, kept in the chat like any other turn."""
    return _last(chat.send(plan_prompt(tools, question)))


def null_view() -> PlanView:
    class _Null:
        def running(self, step: Step, text: str) -> AbstractContextManager[None]:
            return nullcontext()

        def finished(self, step: Step, result: StepResult) -> None:
            return None

    return _Null()
