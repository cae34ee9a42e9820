"""Pure Python: prompt templates, conversations, catalog, config. No terminal, no llama.cpp."""
