"""How a streamed reply is shown: plain text, rendered markdown, or a scene's coloured lines.
One view is chosen for the chat (shell_gpt's printer strategy), not decided per token."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console

from airochat.adapters.markdown_stream import MarkdownStream
from airochat.adapters.scene_view import SceneView
from airochat.domain.scene import Scene
from airochat.domain.visible import visible


def on_screen(console: Console, text: str) -> str:
    """Text that did not come from airochat as this console may show it: its control
    characters made visible on a terminal (domain/visible.py), the exact text on a pipe."""
    return visible(text) if console.is_terminal else text


class ReplyView(Protocol):
    def update(self, chunk: str) -> None: ...

    def close(self) -> None:
        """The reply ended: show what is still held, end on a fresh line."""
        ...


class PlainView:
    """The reply's characters as they come (pipes, --plain-output, NO_COLOR terminals)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.mid_line = False

    def update(self, chunk: str) -> None:
        self.console.file.write(on_screen(self.console, chunk))
        self.console.file.flush()
        self.mid_line = not chunk.endswith("\n")

    def close(self) -> None:
        if self.mid_line:
            self.console.file.write("\n")
            self.console.file.flush()
        self.mid_line = False


def choose_view(console: Console, scene: Scene | None, markdown: bool) -> ReplyView:
    if scene is not None:
        return SceneView(console, scene.names, scene.user)
    if markdown and console.is_terminal:
        return MarkdownStream(console)
    return PlainView(console)
