"""Cove: a privacy-preserving data exchange. Python SDK and CLI."""

__version__ = "0.1.0"
