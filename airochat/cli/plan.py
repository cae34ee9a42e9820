"""`airochat ask MODEL --plan "question" --tools tools.yaml`: a reWOO plan, run.

The model writes the plan (one kept turn of the chat); the steps run in order on stderr (tool,
input, a spinner, the evidence's size, the time); the answer is the reply on stdout, or one
JSON object with `--json`. `--dry-run` shows the parsed plan and runs nothing. A step that
runs a command or reaches the network or an MCP server is asked about first (yes / no / all),
`--yes` allows them all; without a terminal and without `--yes` such a plan is refused, exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from airochat.cli.edge import note
from airochat.cli.request import chat_request, chat_settings, server_url
from airochat.domain.rewoo import consent_answer, one_line, printable
from airochat.errors import AirochatError, ExitCode, UsageError

if TYPE_CHECKING:
    from airochat.cli.options import ChatOptions
    from airochat.domain.cancel import CancelToken
    from airochat.domain.rewoo import Plan, Step
    from airochat.domain.tools_file import ToolsFile
    from airochat.services.calls import CallRun
    from airochat.services.kept_chat import KeptChat
    from airochat.services.plans import Answer, PlanRun, StepResult, Tool


@dataclass(frozen=True)
class PlanArgs:
    model: str | None
    question: str
    tools: Path | None
    dry_run: bool
    max_steps: int
    print_prompt: bool
    as_json: bool
    prompt: str | None = None  # a PROMPT beside --plan: refused


def safe(text: str, limit: int = 0) -> str:
    return printable(text, limit)


def shown(text: str) -> str:
    """What stdout gets: exact on a pipe (the user's data), made visible on a terminal."""
    return safe(text) if sys.stdout.isatty() else text


def load_tools(path: Path | None) -> ToolsFile:
    from airochat.domain.tools_file import ToolsFile, load_tools_file

    return load_tools_file(path) if path is not None else ToolsFile()


def ask_plan(opts: ChatOptions, args: PlanArgs, cancel: CancelToken) -> None:
    from airochat.services.launch import open_chat

    if not 1 <= args.max_steps <= 100:
        raise UsageError("--max-steps should be between 1 and 100")
    if not args.question.strip():
        raise UsageError("--plan needs a question")
    if args.prompt is not None:
        raise UsageError("--plan QUESTION is the message: give no PROMPT beside it")
    settings = chat_settings(opts)
    model = None if args.model == "-" else args.model
    if model is None and not server_url(opts.where, settings):
        raise UsageError("name a MODEL (or give --server URL)")
    spec = load_tools(args.tools or (Path(settings.tools).expanduser() if settings.tools else None))
    request = chat_request(
        opts, settings, model, cancel, interactive=False, tokenizer_only=args.print_prompt
    )
    ready = open_chat(request)
    try:
        for line in ready.notes:
            note(line)
        plan_turn(ready.kept, spec, args, opts.yes)
    finally:
        ready.close()


def plan_turn(kept: KeptChat, spec: ToolsFile, args: PlanArgs, yes: bool) -> None:
    from airochat.services.plan_tools import build_tools
    from airochat.services.plans import make_plan, plan_prompt, read_plan, side_asker

    chat = kept.chat
    tools = build_tools(spec, side_asker(chat))
    if args.print_prompt:
        preview = chat.preview(plan_prompt(tools, args.question))
        sys.stdout.write(preview.prompt + "\n")
        return
    try:
        done = make_plan(chat, tools, args.question)
        if done.finish_reason == "interrupted":
            raise typer.Exit(int(ExitCode.INTERRUPTED))
        plan = read_plan(done.text, tools, args.max_steps)
        if args.dry_run:
            show_dry_run(plan, args.as_json)
            return
        run = execute(plan, done.text, tools, yes)
    finally:
        kept.save()
        for line in kept.save_cache():
            note(line)
    show_run(run, args.as_json)


def execute(plan: Plan, reply: str, tools: dict[str, Tool], yes: bool) -> PlanRun:
    from airochat.services.plans import Consent, require_consent, run_plan

    consent = Consent(ask_terminal if sys.stdin.isatty() else None, yes)
    require_consent(plan, tools, consent)
    return run_plan(plan, reply, tools, TerminalView(), consent)


def ask_terminal(question: str) -> Answer:
    """yes / no / all, asked on stderr, read from the terminal."""
    while True:
        said = typer.prompt(
            f"airochat: {safe(question, 400)}\n  allow? [y]es / [n]o / [a]ll for this plan",
            default="n",
            err=True,
            show_default=False,
        )
        answer = consent_answer(said)
        if answer is not None:
            return answer


class TerminalView:
    """Each step on stderr as it runs: a spinner on a terminal, one line after."""

    def __init__(self) -> None:
        from airochat.adapters.terminal import make_console

        self.console = make_console(stderr=True)

    def running(self, step: Step, text: str) -> AbstractContextManager[None]:
        from rich.text import Text

        line = f":evidence{step.evidence}: = {step.tool}[{one_line(text, 160)}]"
        if step.plan:
            self.console.print(Text(f"Plan: {safe(step.plan, 200)}", style="dim"))
        self.console.print(Text(line, style="bold"))
        if not self.console.is_terminal:
            return nullcontext()
        return _spinner(self.console, f"{step.tool} ...")

    def finished(self, step: Step, result: StepResult) -> None:
        from rich.text import Text

        if result.error is not None:
            said = f"  error ({result.seconds:.1f} s): {safe(result.error, 300)}"
            self.console.print(Text(said, style="red"))
            return
        cut = f", cut to {len(result.evidence)}" if result.truncated else ""
        said = f"  {result.chars} characters{cut} in {result.seconds:.1f} s"
        self.console.print(Text(said, style="dim"))


@contextmanager
def _spinner(console: object, what: str) -> Iterator[None]:
    status = getattr(console, "status")  # noqa: B009 (rich's Console.status)
    with status(what):
        yield


def show_dry_run(plan: Plan, as_json: bool) -> None:
    steps = [
        {"evidence_id": s.evidence, "tool": s.tool, "input": s.input, "plan": s.plan}
        for s in plan.steps
    ]
    if as_json:
        out = {"plan": list(plan.plans), "steps": steps, "answer": plan.answer, "dry_run": True}
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    for s in plan.steps:
        if s.plan:
            typer.echo(f"Plan: {safe(s.plan)}")
        typer.echo(f":evidence{s.evidence}: = {s.tool}[{safe(s.input)}]")
    typer.echo(f"Answer: {safe(plan.answer)}")
    note("dry run: nothing was run")


def show_run(run: PlanRun, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**run.to_json(), "reply": run.reply}, ensure_ascii=False))
    else:
        sys.stdout.write(shown(run.answer or "") + "\n")
    if run.failed:
        which = ", ".join(f":evidence{s.evidence_id}: ({s.tool})" for s in run.failed)
        raise AirochatError(f"{len(run.failed)} of {len(run.steps)} step(s) failed: {which}")


def run_function(
    call: dict[str, Any], functions: dict[str, Any], yes: bool, show: bool
) -> CallRun | None:
    """`ask --functions`: the chosen function's command, run after a yes; its output on
    stdout (unless --json, which carries it)."""
    from airochat.services.calls import run_call
    from airochat.services.plans import Consent

    ran = run_call(call, functions, Consent(ask_terminal if sys.stdin.isatty() else None, yes))
    if ran is not None and show:
        if ran.output is not None:
            sys.stdout.write(shown(ran.output))
            if ran.output and not ran.output.endswith("\n"):
                sys.stdout.write("\n")
        if ran.truncated:
            note("the output was cut at 1 MiB")
    return ran
