"""Flower needs a ClientApp component, but no runner executes this FAB's code: each answers
rounds with its own loop on its own premises (compute_to_data.federated). Refuse loudly."""

from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def refuse(message, context):  # noqa: ANN001, ANN201 - Flower's signature
    raise RuntimeError("Cove runners answer rounds with their own loop; this ClientApp is never run.")
