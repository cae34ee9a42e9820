"""The cards' closed-context QA block and PLAINFORMAT, byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airochat.domain.closed_context import (
    Document,
    closed_context,
    document_from_path,
    parse_meta,
    plain_format,
)
from airochat.errors import InputFileError, UsageError


def test_golden_two_documents_with_meta() -> None:
    docs = [
        Document(
            "In a shocking turn of events, blueberries are now green.\n", {"date": "2021-01-01"}
        ),
        Document("Tomatoes are fruit.", {"source": "b.txt"}),
    ]
    text = closed_context(docs, "What color are blueberries? Source?", {"url": "https://x"})
    assert text == (
        "BEGININPUT\nBEGINCONTEXT\ndate: 2021-01-01\nurl: https://x\nENDCONTEXT\n"
        "In a shocking turn of events, blueberries are now green.\nENDINPUT\n"
        "BEGININPUT\nBEGINCONTEXT\nsource: b.txt\nurl: https://x\nENDCONTEXT\n"
        "Tomatoes are fruit.\nENDINPUT\n"
        "BEGININSTRUCTION\nWhat color are blueberries? Source?\nENDINSTRUCTION"
    )


def test_no_guess_line() -> None:
    text = closed_context([Document("x")], "Q?", {}, no_guess=True)
    assert text.endswith(
        "BEGININSTRUCTION\nQ?\nDon't make up answers if you don't know.\nENDINSTRUCTION"
    )


def test_document_from_path_has_source_and_date(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    os.utime(f, (1_600_000_000, 1_600_000_000))
    assert document_from_path(f) == Document("hello", {"source": "notes.txt", "date": "2020-09-13"})


def test_missing_context_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such context file"):
        document_from_path(tmp_path / "nope.txt")


def test_meta_parsing() -> None:
    assert parse_meta(["a=1", "url = https://x?a=b"]) == {"a": "1", "url": "https://x?a=b"}
    with pytest.raises(UsageError, match="key=value"):
        parse_meta(["nokey"])


def test_plainformat() -> None:
    assert plain_format("Write a hello world in C.") == "Write a hello world in C. PLAINFORMAT"
