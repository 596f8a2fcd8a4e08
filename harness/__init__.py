"""harness: a self-hosted evaluation harness for code models."""

__version__ = "0.1.0"
