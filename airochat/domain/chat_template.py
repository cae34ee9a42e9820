"""A model's own `tokenizer.chat_template` (jinja2), turned into one of our templates.

Chat templates come inside downloaded files, so they are untrusted code: they render only in
jinja2's ImmutableSandboxedEnvironment (CVE-2024-34359 was a template reaching `os` through
Python internals in a plain Environment). The template is rendered once with sentinels in place
of the system prompt and messages; the text around them becomes our format strings, so each turn
is then rendered and tokenized incrementally like every other template.
"""

from __future__ import annotations

from airochat.domain.templates import Template
from airochat.errors import UsageError

_SYS, _MSG, _REPLY = "\x01SYS\x01", "\x01MSG\x01", "\x01REPLY\x01"


class ChatTemplateError(UsageError):
    pass


def _render(source: str, messages: list[dict[str, str]], gen: bool, bos: str, eos: str) -> str:
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ChatTemplateError(f"the model's chat template refused: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source).render(
            messages=messages, add_generation_prompt=gen, bos_token=bos, eos_token=eos
        )
    except SecurityError as exc:
        raise ChatTemplateError(
            f"the model's chat template tried to reach Python internals ({exc}); "
            "refusing it -- choose a template with --template"
        ) from None
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template failed: {exc}") from None


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
    try:
        first = _render(source, sys_user, True, bos, eos)
        with_sys = True
    except ChatTemplateError:
        with_sys = False  # some templates refuse a system role
        first = _render(source, sys_user[1:], True, bos, eos)
    opened = sys_user if with_sys else sys_user[1:]
    no_sys = _render(source, sys_user[1:], True, bos, eos)
    answered = [*opened, {"role": "assistant", "content": _REPLY}]
    closed = _render(source, answered, False, bos, eos)
    head, sep, reply_end = closed.partition(_REPLY)
    if not sep:
        raise ChatTemplateError("the model's chat template drops the assistant's reply")
    _after(head, _render(source, opened, False, bos, eos), "the generation prompt")
    two = [*answered, {"role": "user", "content": _MSG}]
    nxt = _after(_render(source, two, True, bos, eos), closed, "a second turn")
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
