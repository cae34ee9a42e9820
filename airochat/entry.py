"""The console script's first code: Ctrl-C stays quiet from the first instant (see
`adapters/process_signals.py`), then the CLI runs."""

from __future__ import annotations


def main() -> None:
    from airochat.adapters.process_signals import quiet_start

    quiet_start()
    from airochat.cli import main as cli_main

    cli_main()
