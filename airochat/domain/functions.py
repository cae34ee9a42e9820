"""Function calling as the airoboros cards train it: pick a function and parameters, as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from airochat.errors import AirochatError, UsageError

PREAMBLE = (
    "As an AI assistant, please select the most suitable function and parameters from the list "
    "of available functions below, based on the user's input. Provide your response in JSON "
    "format."
)


class FunctionCallError(AirochatError):
    """The model's reply is not a usable function call."""


def load_functions(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except FileNotFoundError:
        raise UsageError(f"no such functions file: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: not readable YAML/JSON ({exc})") from None
    if isinstance(data, list):  # also accept [{name: ..., description: ..., params: ...}]
        data = {f.get("name"): {k: v for k, v in f.items() if k != "name"} for f in data}
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path}: expected a mapping of function name -> description/params")
    for name, spec in data.items():
        if not isinstance(name, str) or not isinstance(spec, dict) or "description" not in spec:
            raise UsageError(f"{path}: function {name!r} needs a description")
    return data


def functions_prompt(functions: dict[str, Any], user_input: str) -> str:
    listing = yaml.safe_dump(functions, sort_keys=False, allow_unicode=True, width=1000).rstrip()
    return f"{PREAMBLE}\n\nInput: {user_input.strip()}\n\nAvailable functions:\n{listing}"


_FENCE = re.compile(r"```(?:json|yaml)?\s*\n(.*?)```", re.DOTALL)


def parse_call(reply: str, functions: dict[str, Any]) -> dict[str, Any]:
    """The model's choice as {"function": name, "params": {...}}, or FunctionCallError."""
    fenced = _FENCE.search(reply)
    body = (fenced.group(1) if fenced else reply).strip()
    data: Any = None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        try:
            data = json.loads(body[start : end + 1]) if 0 <= start < end else None
        except json.JSONDecodeError:
            data = None
        if data is None:
            try:
                data = yaml.safe_load(body)
            except yaml.YAMLError:
                data = None
    one_line = " ".join(reply.split())[:300]
    if not isinstance(data, dict) or "function" not in data:
        raise FunctionCallError(f"the reply is not a function call in JSON or YAML: {one_line!r}")
    name = data["function"]
    if name not in functions:
        raise FunctionCallError(f"the model chose an unknown function {name!r}: {one_line!r}")
    params = data.get("params", data.get("parameters", {}))
    if not isinstance(params, dict):
        raise FunctionCallError(f"params should be a mapping: {one_line!r}")
    return {"function": name, "params": params}
