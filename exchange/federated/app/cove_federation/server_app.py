"""The ServerApp: Cove's, from the installed `exchange` package (no code of its own here)."""

from flwr.serverapp import ServerApp

from exchange.federated.server import run_federation

app = ServerApp()


@app.main()
def main(grid, context) -> None:  # noqa: ANN001 - Flower's signature
    run_federation(grid, context)
