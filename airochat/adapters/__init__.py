"""The outside world: llama.cpp, the Hub, the terminal, files on disk."""
