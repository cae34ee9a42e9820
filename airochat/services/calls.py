"""Function calls that run: a function in the functions file may carry `command: [argv...]`.
Once the model has chosen it and its params, the command runs (after a yes) with the params
as JSON on stdin and each `{param}` in an argv element replaced by that param's value (one
element stays one element; never a shell)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airochat.adapters import command_tool
from airochat.errors import AirochatError, UsageError
from airochat.services.plans import Consent

DEFAULT_TIMEOUT_S = 60.0


@dataclass
class CallRun:
    argv: list[str]
    output: str | None = None
    error: str | None = None
    truncated: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "command": self.argv,
            "output": self.output,
            "error": self.error,
            "truncated": self.truncated,
        }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def call_argv(spec: Mapping[str, Any], params: Mapping[str, Any]) -> list[str] | None:
    """The argv for the chosen function, or None when it has no command."""
    argv = spec.get("command")
    if not argv:
        return None
    declared = spec.get("params") or {}
    values = {str(k): "" for k in declared}
    values.update({str(k): _text(v) for k, v in params.items()})
    return command_tool.fill_argv([str(a) for a in argv], values)


def require_call_consent(argv: list[str] | None, consent: Consent) -> None:
    if argv is not None and consent.ask is None and not consent.all:
        raise UsageError(
            f"the chosen function runs {argv[0]} and there is no terminal to ask: "
            "give --yes to allow it"
        )


def run_call(
    call: Mapping[str, Any], functions: Mapping[str, Any], consent: Consent
) -> CallRun | None:
    """Run the chosen function's command (None when it has none); a failure is the error."""
    spec = functions[call["function"]]
    argv = call_argv(spec, call["params"])
    if argv is None:
        return None
    require_call_consent(argv, consent)
    if not consent.allow(f"run {shlex.join(argv)}"):
        raise AirochatError(f"{call['function']}: not run (not allowed)")
    run = CallRun(argv)
    stdin = json.dumps(call["params"], ensure_ascii=False)
    try:
        out = command_tool.run_command(argv, stdin, float(spec.get("timeout", DEFAULT_TIMEOUT_S)))
    except command_tool.CommandFailed as exc:
        run.error = str(exc)
        return run
    run.output, run.truncated = out.text, out.truncated
    return run
