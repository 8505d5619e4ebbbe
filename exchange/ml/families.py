"""The model families the runner can train, by the names policies and specs use.

Kept apart from `exchange.ml.spec` (which imports pandas through the schema) so that the
policy model can check family names without importing the training stack.
"""

from __future__ import annotations

MODEL_FAMILIES: tuple[str, ...] = ("mlp",)  # exchange.ml.model builds these; a spec's `family`
