"""Code shared by tp-manager and the supervisor agent: config, logs, money, messages."""

__version__ = "0.1.0"
