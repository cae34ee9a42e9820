"""Use cases (chat session, model resolution, ...): no terminal, no typer."""
