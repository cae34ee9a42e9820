"""Function calling as the airoboros cards train it: pick a function and parameters, as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from airochat.domain.yaml_text import YamlError, load_yaml, read_yaml_file
from airochat.errors import AirochatError, InputFileError

PREAMBLE = (
    "As an AI assistant, please select the most suitable function and parameters from the list "
    "of available functions below, based on the user's input. Provide your response in JSON "
    "format."
)


class FunctionCallError(AirochatError):
    """The model's reply is not a usable function call."""


def _from_list(items: list[Any], where: str) -> dict[str, Any]:
    """[{name: ..., description: ..., params: ...}] -> {name: {description, params}}."""
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputFileError(f"{where}: item {i + 1} should be a mapping with a name")
        out[item["name"]] = {k: v for k, v in item.items() if k != "name"}
    return out


def load_functions(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, "functions file")  # YAML is a superset of JSON
    if isinstance(data, list):
        data = _from_list(data, str(path))
    if not isinstance(data, dict) or not data:
        raise InputFileError(f"{path}: expected a mapping of function name -> description/params")
    for name, spec in data.items():
        if not isinstance(name, str) or not isinstance(spec, dict) or "description" not in spec:
            raise InputFileError(f"{path}: function {name!r} needs a description")
        if not isinstance(spec.get("params", {}), dict):
            raise InputFileError(f"{path}: the params of {name!r} should be a mapping")
        _check_command(spec, f"{path}: function {name!r}")
    return data


def _check_command(spec: dict[str, Any], where: str) -> None:
    """`command: [argv...]` (optional): what runs the function once the model chose it."""
    argv = spec.get("command")
    if argv is not None and (
        not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv)
    ):
        raise InputFileError(f"{where}: command should be a non-empty list of strings (argv)")
    timeout = spec.get("timeout", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InputFileError(f"{where}: timeout should be a positive number of seconds")


# Keys that tell airochat how to run a function: never shown to the model.
RUN_KEYS = ("command", "timeout")


def functions_prompt(functions: dict[str, Any], user_input: str) -> str:
    shown = {
        name: {k: v for k, v in spec.items() if k not in RUN_KEYS}
        for name, spec in functions.items()
    }
    listing = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=1000).rstrip()
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
                data = load_yaml(body, "the reply")
            except YamlError:
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
