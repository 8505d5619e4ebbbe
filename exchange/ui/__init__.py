"""The market in a browser: a read-only page over the chain and content-addressed documents.

`MarketPage(client).routes()` are Starlette routes for the datasets (search, tags), a
dataset (schema, mock sample, policy and its history, the privacy ledger plotted against
its budget, its jobs), the jobs, and a job with its provenance checked. `cove ui` serves
the whole market on a buyer's own machine; an owner's endpoint serves its runner's
datasets at `/` (`MarketPage(client, runner)`), from its own store alone. No key is used:
every figure is public, and each check says who computed it.
"""

from exchange.ui.app import MarketPage, ServedBy

__all__ = ["MarketPage", "ServedBy"]
