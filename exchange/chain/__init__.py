"""Talking to an EVM chain: local anvil, connections, contract bindings, transactions."""
