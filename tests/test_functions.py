"""Function calling: the cards' prompt and validated parsing of the model's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from airochat.domain.functions import (
    FunctionCallError,
    functions_prompt,
    load_functions,
    parse_call,
)
from airochat.errors import InputFileError

YAML = """\
file_analytics:
  description: This tool performs various operations on a text file.
  params:
    action: The operation we want to perform on the data, such as "count_occurrences", "find_line", etc.
    filters:
      keyword: The word or phrase we want to search for.
"""


@pytest.fixture
def functions(tmp_path: Path) -> dict[str, object]:
    f = tmp_path / "functions.yaml"
    f.write_text(YAML)
    return load_functions(f)


def test_prompt_golden(functions: dict[str, object]) -> None:
    assert functions_prompt(functions, "How many times is 'Python' in my file?") == (
        "As an AI assistant, please select the most suitable function and parameters from the "
        "list of available functions below, based on the user's input. Provide your response in "
        "JSON format.\n\nInput: How many times is 'Python' in my file?\n\nAvailable functions:\n"
        + YAML.rstrip()
    )


@pytest.mark.parametrize(
    "reply",
    [
        '{"function": "file_analytics", "params": {"action": "count_occurrences", '
        '"filters": {"keyword": "Python"}}}',
        'Sure:\n```json\n{"function": "file_analytics", "params": {"action": '
        '"count_occurrences", "filters": {"keyword": "Python"}}}\n```',
        "function: file_analytics\nparams:\n  action: count_occurrences\n  filters:\n"
        "    keyword: Python\n",
    ],
    ids=["json", "fenced", "yaml"],
)
def test_parse_call(functions: dict[str, object], reply: str) -> None:
    assert parse_call(reply, functions) == {
        "function": "file_analytics",
        "params": {"action": "count_occurrences", "filters": {"keyword": "Python"}},
    }


def test_reply_that_is_no_call_shows_the_raw_text(functions: dict[str, object]) -> None:
    with pytest.raises(FunctionCallError, match=r"not a function call.*I think you should"):
        parse_call("I think you should count them by hand.", functions)


def test_unknown_function(functions: dict[str, object]) -> None:
    with pytest.raises(FunctionCallError, match="unknown function 'delete_everything'"):
        parse_call('{"function": "delete_everything", "params": {}}', functions)


def test_json_file_and_bad_files(tmp_path: Path) -> None:
    f = tmp_path / "f.json"
    f.write_text('{"search": {"description": "Web search", "params": {"q": "query"}}}')
    assert list(load_functions(f)) == ["search"]
    f.write_text('{"search": {"params": {}}}')
    with pytest.raises(InputFileError, match="needs a description"):
        load_functions(f)
    with pytest.raises(InputFileError, match="no such functions file"):
        load_functions(tmp_path / "missing.yaml")
