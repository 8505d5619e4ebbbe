"""Cove's compute-to-data runner: trains models next to the data with differential privacy."""
