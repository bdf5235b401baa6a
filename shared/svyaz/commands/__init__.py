"""Subcommands of ``svyaz``: one module per feature, each with ``register(commands)``."""
