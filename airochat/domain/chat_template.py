"""A model's own `tokenizer.chat_template` (jinja2), turned into one of our templates.

Chat templates come inside downloaded files, so they are untrusted code: they render only in
jinja2's ImmutableSandboxedEnvironment (CVE-2024-34359 was a template reaching `os` through
Python internals in a plain Environment). The template is rendered once with sentinels in place
of the system prompt and messages; the text around them becomes our format strings, so each turn
is then rendered and tokenized incrementally like every other template.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from airochat.domain.templates import Template
from airochat.errors import InputFileError

_SYS, _MSG, _REPLY = "\x01SYS\x01", "\x01MSG\x01", "\x01REPLY\x01"


class ChatTemplateError(InputFileError):
    pass


RENDER_SECONDS = 2.0  # a chat template renders in microseconds; anything slower is a trap
RENDER_STEPS = 5_000_000  # lines of Python run: a real template takes tens of thousands
RENDER_BYTES = 1 << 20
MAX_OPERAND = 1 << 16  # "x" * 10**9 and 10 ** 10**9 are refused before they are computed


class _Budget(BaseException):
    """Over budget: a BaseException, so no `except Exception` inside jinja2 swallows it."""


def _environment() -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            for a, b in ((left, right), (right, left)):
                if isinstance(a, str | list | tuple) and isinstance(b, int) and b > MAX_OPERAND:
                    raise _Budget(f"repeats a sequence {b} times")
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise _Budget(f"raises to the power {right}")
            return super().call_binop(context, operator, left, right)

    return Bounded(trim_blocks=True, lstrip_blocks=True)


@contextmanager
def _budget(seconds: float, steps: int) -> Iterator[None]:
    """A budget for pure-Python rendering (nested loops that never output): the lines of
    Python the render runs are counted through `sys.settrace`, which sees every line of
    jinja2's compiled template and of jinja2 itself, in this thread only. No signal, no
    timer: it holds in any thread, and a C call that never returns is the only thing it
    cannot stop (the sandbox bounds those: ranges, operands, output size)."""
    deadline = time.monotonic() + seconds
    count = 0
    tripped = False

    def trace(_frame: FrameType, _event: str, _arg: object) -> Any:
        nonlocal count, tripped
        if tripped:
            return None
        count += 1
        if count > steps:
            tripped = True
            raise _Budget(f"runs more than {steps} steps")
        if not count % 4096 and time.monotonic() > deadline:
            tripped = True
            raise _Budget(f"took longer than {seconds:g} s")
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        yield
    finally:
        sys.settrace(previous)


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(f"the model's chat template refused: {message}")


@contextmanager
def _refusals() -> Iterator[None]:
    """Compiling or rendering the template within its time, step and recursion budget; any
    failure is one line that names the problem."""
    from jinja2.exceptions import SecurityError

    try:
        with _budget(RENDER_SECONDS, RENDER_STEPS):
            yield
    except ChatTemplateError:
        raise
    except SecurityError as exc:
        raise ChatTemplateError(
            f"the model's chat template tried to reach Python internals ({exc}); "
            "refusing it -- choose a template with --template"
        ) from None
    except _Budget as exc:
        raise ChatTemplateError(
            f"the model's chat template {exc}; refusing it -- choose a template with --template"
        ) from None
    except RecursionError:
        raise ChatTemplateError(
            "the model's chat template recurses without end; choose a template with --template"
        ) from None
    except Exception as exc:  # syntax errors, {% include %} without a loader, type errors
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ChatTemplateError(
            f"the model's chat template failed ({what}); choose a template with --template"
        ) from None


def _compile(source: str) -> Any:
    """The template, compiled once in jinja2's bounded immutable sandbox (compiling under
    the step count costs several times the render: once, not per render)."""
    env = _environment()
    env.globals["raise_exception"] = _raise_exception
    with _refusals():
        return env.from_string(source)


def _render(template: Any, messages: list[dict[str, str]], gen: bool, bos: str, eos: str) -> str:
    """One render, its output bounded too."""
    with _refusals():
        out: list[str] = []
        size = 0
        context = {"messages": messages, "add_generation_prompt": gen}
        for chunk in template.generate(**context, bos_token=bos, eos_token=eos):
            size += len(chunk)
            if size > RENDER_BYTES:
                raise _Budget("writes more than 1 MiB")
            out.append(chunk)
        return "".join(out)


def _fmt(text: str) -> str:
    """Rendered text with sentinels -> a format string for Template."""
    text = text.replace("{", "{{").replace("}", "}}")
    return text.replace(_SYS, "{system}").replace(_MSG, "{message}")


def _after(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise ChatTemplateError(f"the model's chat template does not render {what} incrementally")
    return text[len(prefix) :]


def template_from_gguf(source: str, bos: str, eos: str, stop: tuple[str, ...]) -> Template:
    """Derive first/next/reply_end from the template; `stop` are the model's end-of-turn texts."""
    sys_user = [{"role": "system", "content": _SYS}, {"role": "user", "content": _MSG}]
    template = _compile(source)
    try:
        first = _render(template, sys_user, True, bos, eos)
        with_sys = True
    except ChatTemplateError:
        with_sys = False  # some templates refuse a system role
        first = _render(template, sys_user[1:], True, bos, eos)
    opened = sys_user if with_sys else sys_user[1:]
    no_sys = _render(template, sys_user[1:], True, bos, eos)
    answered = [*opened, {"role": "assistant", "content": _REPLY}]
    closed = _render(template, answered, False, bos, eos)
    head, sep, reply_end = closed.partition(_REPLY)
    if not sep:
        raise ChatTemplateError("the model's chat template drops the assistant's reply")
    _after(head, _render(template, opened, False, bos, eos), "the generation prompt")
    two = [*answered, {"role": "user", "content": _MSG}]
    nxt = _after(_render(template, two, True, bos, eos), closed, "a second turn")
    return Template(
        name="gguf",
        summary="the model's own chat template (tokenizer.chat_template)",
        first=_fmt(first),
        first_no_system=_fmt(no_sys),
        next=_fmt(nxt),
        reply_end=_fmt(reply_end),
        default_system="",  # the template's own default applies when it has one
        stop=stop,
        broad_markers=True,
    )
