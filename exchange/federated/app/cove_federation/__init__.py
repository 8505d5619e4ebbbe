"""Cove's Flower App: the ServerApp entry point (and a ClientApp that refuses to run)."""
