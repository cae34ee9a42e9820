"""airochat: terminal chat for local GGUF models, made for the airoboros family."""

__version__ = "0.1.0"
