"""The reWOO planning prompt (the card's, byte for byte) and the plan parser."""

from __future__ import annotations

import pytest

from airochat.domain.rewoo import (
    CARD_TOOLS,
    PlanError,
    parse_plan,
    planning_prompt,
    references,
    substitute,
)

NOBEL = "Who won the Nobel Prize in Literature in 2020 and what is their most famous work?"

# The airoboros l2 2.0 / m2.0 card's example prompt, as DESIGN.md keeps it.
CARD_PROMPT = (
    "Please construct a systematic plan to generate an optimal response to the user instruction, utilizing a set of provided tools. Each plan will correspond to an evidence value, which will be the output of one of the available functions given an input string\n"
    "that could be the user's question, one or more prior evidence values, or a combination of both.\n"
    "\n"
    "Here are the tools available to be called:\n"
    "DuckDuckGo[input]: Tool that enables the user to search for information using the DuckDuckGo search engine. This tool is helpful in locating a suitable list of sites that may contain the answer to the user's query. It does not directly answer the question but finds a list of sites that might have the answer.\n"
    "TextScraper[input]: Load one or more websites from the input string containing newline delimited links, where input is one or more links, and produces plain text output containing the content of the links.\n"
    "HyperlinkExtractor[input]: Extract links from plain text and produces a plain text, newline delimited response of links.\n"
    "KnowledgeModel[input]: Question answering language model, particularly useful in answering questions based on an input passage of text. The input must be a text question that references an :evidence[n]: variable, e.g. What color is the cat, given :evidence1:?\n"
    "\n"
    "The output should be in format:\n"
    "Plan: [first action to take based on input question]\n"
    ":evidence0: = [function to call with input parameter]\n"
    "Plan: [next action to take, based on result of :evidence0:]\n"
    ':evidence1: = [next function to call and input parameter, which may include reference to previous evidence, e.g. "Given context :evidence0"]\n'
    "...\n"
    "Answer: [:evidence[n]: containing the final answer.]\n"
    "\n"
    "Question: Who won the Nobel Prize in Literature in 2020 and what is their most famous work?"
)

# The card's own example answer.
CARD_PLAN = """
Plan: Begin by conducting a web search to find out who won the Nobel Prize in Literature in 2020.
:evidence0: = DuckDuckGo[Nobel Prize in Literature 2020 winner]
Plan: Utilize the KnowledgeModel to interpret the search results and find the name of the laureate.
:evidence1: = KnowledgeModel[Who won the Nobel Prize in Literature in 2020, given :evidence0:?]
Plan: Conduct another web search to find the most famous work of the identified laureate.
:evidence2: = DuckDuckGo[Most famous work of :evidence1:]
Plan: Extract the relevant links from the DuckDuckGo search results for a more focused search.
:evidence3: = HyperlinkExtractor[:evidence2:]
Plan: Use the TextScraper tool to extract information from the relevant links.
:evidence4: = TextScraper[:evidence3:]
Plan: Finally, utilize the KnowledgeModel to identify and summarize the most famous work of the laureate from the extracted information.
:evidence5: = KnowledgeModel[What is the most famous work of :evidence1:, given :evidence4:?]
Answer: :evidence5:
"""

TOOLS = [*CARD_TOOLS, "Echo"]


def test_the_planning_prompt_is_the_cards_byte_for_byte() -> None:
    assert planning_prompt(list(CARD_TOOLS.items()), NOBEL) == CARD_PROMPT


def test_user_tools_follow_the_built_ins_in_the_same_shape() -> None:
    prompt = planning_prompt([*CARD_TOOLS.items(), ("Echo", "Says it back.\n  Twice.")], "q?")
    tools = prompt.split("Here are the tools available to be called:\n")[1].split("\n\n")[0]
    assert tools.splitlines()[-1] == "Echo[input]: Says it back. Twice."
    assert len(tools.splitlines()) == 5
    assert prompt.endswith("Answer: [:evidence[n]: containing the final answer.]\n\nQuestion: q?")


def test_the_cards_example_plan_parses() -> None:
    plan = parse_plan(CARD_PLAN, TOOLS)
    assert [s.tool for s in plan.steps] == [
        "DuckDuckGo",
        "KnowledgeModel",
        "DuckDuckGo",
        "HyperlinkExtractor",
        "TextScraper",
        "KnowledgeModel",
    ]
    assert [s.evidence for s in plan.steps] == [0, 1, 2, 3, 4, 5]
    assert (
        plan.steps[1].input == "Who won the Nobel Prize in Literature in 2020, given :evidence0:?"
    )
    assert plan.steps[0].plan.startswith("Begin by conducting a web search")
    assert plan.steps[0].line == 3
    assert plan.answer == ":evidence5:"
    assert len(plan.plans) == 6


def test_case_and_spacing_are_tolerated() -> None:
    reply = "  plan:  look it up\n: Evidence 1 : =  duckduckgo [ the query ]\nPLAN: read\n:EVIDENCE2:=textscraper[:evidence1:]\n answer :  :evidence2:  \n"
    plan = parse_plan(reply, TOOLS)
    assert [(s.evidence, s.tool, s.input) for s in plan.steps] == [
        (1, "DuckDuckGo", "the query"),
        (2, "TextScraper", ":evidence1:"),
    ]
    assert plan.answer == ":evidence2:"


def test_references_and_substitution() -> None:
    assert references("a :evidence1: b :evidence[2]: c :Evidence1: d Given context :evidence0") == [
        1,
        2,
        0,
    ]
    assert (
        substitute("of :evidence1:, given :evidence0 ok", {0: "ZERO", 1: "ONE"}.__getitem__)
        == "of ONE, given ZERO ok"
    )


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            "Plan: x\n:evidence0: = DuckDuckGo[q]\nrm -rf /\nAnswer: :evidence0:",
            "line 3: not a Plan:",
        ),
        ("Plan: x\n:evidence0: = Shell[ls]\nAnswer: :evidence0:", "line 2: unknown tool 'Shell'"),
        (
            ":evidence0: = DuckDuckGo[q :evidence1:]\n:evidence1: = Echo[x]\nAnswer: :evidence1:",
            "line 1: :evidence1: is used before a step produces it",
        ),
        (
            ":evidence0: = Echo[a]\n:evidence0: = Echo[b]\nAnswer: :evidence0:",
            "line 2: :evidence0: is produced twice",
        ),
        (":evidence0: = Echo[a]\nAnswer: :evidence3:", "line 2: :evidence3: is used before"),
        (":evidence0: = Echo[a]\n", "no Answer: line"),
        ("Plan: nothing\nAnswer: 42", "no :evidenceN: = Tool[input] step"),
        (":evidence0: = Echo[a]\nAnswer: :evidence0:\nmore", "line 3: text after the Answer line"),
        (
            "".join(f":evidence{i}: = Echo[{i}]\n" for i in range(11)) + "Answer: :evidence10:",
            "more than 10 steps",
        ),
    ],
)
def test_a_bad_plan_names_its_line_and_runs_nothing(reply: str, said: str) -> None:
    with pytest.raises(PlanError, match=None) as info:
        parse_plan(reply, TOOLS)
    assert said in str(info.value)


def test_max_steps_is_adjustable() -> None:
    reply = ":evidence0: = Echo[a]\n:evidence1: = Echo[b]\nAnswer: :evidence1:"
    with pytest.raises(PlanError, match="more than 1 steps"):
        parse_plan(reply, TOOLS, max_steps=1)
    assert len(parse_plan(reply, TOOLS, max_steps=2).steps) == 2


def test_one_line_shows_line_breaks_skips_blank_lines_and_cuts() -> None:
    from airochat.domain.rewoo import one_line

    assert one_line("a\n\n  b \n\x1b[2J\u202e", 80) == "a ⏎ b ⏎ \\x1b[2J<U+202E>"
    assert one_line("x" * 50, 10) == "x" * 9 + "…"
