"""reWOO plans as the airoboros 2.x cards train them: the planning prompt (byte for byte the
card's), and the parser for the plan the model writes back.

A plan is `Plan: ...` lines, one `:evidenceN: = Tool[input]` step each, and `Answer: ...`
naming the evidence that holds the answer. Inputs may name evidence produced by earlier steps.
The parser is tolerant of case and spacing and strict about everything else: a line it cannot
read, an unknown tool, or a reference to evidence not produced yet is an error naming the line,
and then nothing runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from airochat.domain.visible import visible
from airochat.errors import AirochatError

INTRO = (
    "Please construct a systematic plan to generate an optimal response to the user "
    "instruction, utilizing a set of provided tools. Each plan will correspond to an evidence "
    "value, which will be the output of one of the available functions given an input string\n"
    "that could be the user's question, one or more prior evidence values, or a combination of "
    "both."
)
TOOLS_HEADER = "Here are the tools available to be called:"
OUTPUT_FORMAT = (
    "The output should be in format:\n"
    "Plan: [first action to take based on input question]\n"
    ":evidence0: = [function to call with input parameter]\n"
    "Plan: [next action to take, based on result of :evidence0:]\n"
    ":evidence1: = [next function to call and input parameter, which may include reference to "
    'previous evidence, e.g. "Given context :evidence0"]\n'
    "...\n"
    "Answer: [:evidence[n]: containing the final answer.]"
)

# The built-in tools, in the card's order, with the card's descriptions.
CARD_TOOLS: dict[str, str] = {
    "DuckDuckGo": (
        "Tool that enables the user to search for information using the DuckDuckGo search "
        "engine. This tool is helpful in locating a suitable list of sites that may contain the "
        "answer to the user's query. It does not directly answer the question but finds a list "
        "of sites that might have the answer."
    ),
    "TextScraper": (
        "Load one or more websites from the input string containing newline delimited links, "
        "where input is one or more links, and produces plain text output containing the "
        "content of the links."
    ),
    "HyperlinkExtractor": (
        "Extract links from plain text and produces a plain text, newline delimited response "
        "of links."
    ),
    "KnowledgeModel": (
        "Question answering language model, particularly useful in answering questions based "
        "on an input passage of text. The input must be a text question that references an "
        ":evidence[n]: variable, e.g. What color is the cat, given :evidence1:?"
    ),
}

MAX_STEPS = 10


class PlanError(AirochatError):
    """The model's plan cannot be run as written: nothing was run."""


@dataclass(frozen=True)
class Step:
    evidence: int  # N of :evidenceN:
    tool: str  # the tool's name as the tools list spells it
    input: str  # as written, references not yet substituted
    plan: str  # the `Plan:` line before it ("" when none)
    line: int  # 1-based line number in the reply


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    answer: str  # the Answer line's text: usually one reference, `:evidenceN:`
    plans: tuple[str, ...]  # every `Plan:` line, in order


def planning_prompt(tools: Sequence[tuple[str, str]], question: str) -> str:
    """The card's prompt: the intro, `Name[input]: description` per tool, the output format,
    the question."""
    lines = "\n".join(f"{name}[input]: {' '.join(desc.split())}" for name, desc in tools)
    return f"{INTRO}\n\n{TOOLS_HEADER}\n{lines}\n\n{OUTPUT_FORMAT}\n\nQuestion: {question.strip()}"


# `:evidence3:` (also `:evidence[3]:`, `: Evidence 3 :`, and the card's own `:evidence0` with
# no closing colon).
REFERENCE = re.compile(r":\s?evidence\s?\[?(\d+)\]?(?:\s?:)?", re.IGNORECASE)
_PLAN = re.compile(r"^\s*plan\s*:\s*(.*?)\s*$", re.IGNORECASE)
_STEP = re.compile(
    r"^\s*:\s*evidence\s*\[?(\d+)\]?\s*:\s*=\s*([A-Za-z_][\w.\-]*)\s*\[(.*)\]\s*$",
    re.IGNORECASE,
)
_ANSWER = re.compile(r"^\s*(?:final\s+)?answer\s*:\s*(.*?)\s*$", re.IGNORECASE)


def printable(text: str, limit: int = 0) -> str:
    """Text from a model, a page or a tool as a terminal may show it: control characters
    (escape sequences) and bidi controls written out, never sent (domain/visible.py); cut to
    `limit` characters when given."""
    out = visible(text)
    return out if not limit or len(out) <= limit else out[: limit - 1] + "…"


def one_line(text: str, limit: int) -> str:
    """A step's input on one line: evidence written into it can be a whole page, which
    would bury the plan's steps on stderr; its line breaks are shown as ⏎."""
    parts = (part.strip() for part in text.splitlines())
    return printable(" ⏎ ".join(part for part in parts if part), limit)


_CONSENT: dict[str, Literal["yes", "no", "all"]] = {
    "y": "yes",
    "yes": "yes",
    "a": "all",
    "all": "all",
    "n": "no",
    "no": "no",
    "": "no",
}


def consent_answer(said: str) -> Literal["yes", "no", "all"] | None:
    """A typed answer to "allow this step?": yes, no or all; None when it is none of them."""
    return _CONSENT.get(said.strip().lower())


def references(text: str) -> list[int]:
    """The evidence numbers `text` names, in order, each once."""
    return list(dict.fromkeys(int(m.group(1)) for m in REFERENCE.finditer(text)))


def substitute(text: str, value: Callable[[int], str]) -> str:
    """`text` with each evidence reference replaced by `value(N)`."""
    return REFERENCE.sub(lambda m: value(int(m.group(1))), text)


def _shown(line: str) -> str:
    one = line.strip()
    return repr(one if len(one) <= 120 else one[:117] + "...")


def parse_plan(reply: str, tools: Sequence[str], max_steps: int = MAX_STEPS) -> Plan:
    """The plan in `reply`, checked against the tools' names (matched ignoring case)."""
    by_lower = {t.lower(): t for t in tools}
    steps: list[Step] = []
    plans: list[str] = []
    answer: str | None = None
    pending = ""
    for number, line in enumerate(reply.splitlines(), start=1):
        if not line.strip():
            continue
        if answer is not None:
            raise PlanError(f"line {number}: text after the Answer line: {_shown(line)}")
        if m := _PLAN.match(line):
            pending = m.group(1)
            plans.append(pending)
        elif m := _STEP.match(line):
            steps.append(_step(m, number, line, by_lower, steps, pending))
            pending = ""
            if len(steps) > max_steps:
                raise PlanError(
                    f"line {number}: the plan has more than {max_steps} steps "
                    "(--max-steps raises the limit)"
                )
        elif m := _ANSWER.match(line):
            answer = m.group(1)
            _check_refs(answer, number, steps)
        else:
            raise PlanError(
                f"line {number}: not a Plan:, :evidenceN: = Tool[input] or Answer: line: "
                f"{_shown(line)}"
            )
    if not steps:
        raise PlanError("the reply has no :evidenceN: = Tool[input] step")
    if answer is None:
        raise PlanError("the plan has no Answer: line naming the evidence that answers")
    if not answer.strip():
        raise PlanError("the Answer: line is empty")
    return Plan(tuple(steps), answer, tuple(plans))


def _step(
    m: re.Match[str],
    number: int,
    line: str,
    by_lower: dict[str, str],
    steps: list[Step],
    plan: str,
) -> Step:
    evidence, name, text = int(m.group(1)), m.group(2), m.group(3).strip()
    tool = by_lower.get(name.lower())
    if tool is None:
        known = ", ".join(by_lower.values())
        raise PlanError(f"line {number}: unknown tool {name!r} (the tools are: {known})")
    if any(s.evidence == evidence for s in steps):
        raise PlanError(f"line {number}: :evidence{evidence}: is produced twice")
    _check_refs(text, number, steps)
    return Step(evidence, tool, text, plan, number)


def _check_refs(text: str, number: int, steps: list[Step]) -> None:
    produced = {s.evidence for s in steps}
    for ref in references(text):
        if ref not in produced:
            raise PlanError(f"line {number}: :evidence{ref}: is used before a step produces it")
