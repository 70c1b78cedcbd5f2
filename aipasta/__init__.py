"""AI Pasta: wiring of the gateway (settings, app factory, CLI)."""

__version__ = "0.1.0"
