"""council: ask several LLM personas at once, and run councils that deliberate."""

__version__ = "0.1.0"
