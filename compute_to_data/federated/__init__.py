"""The owner's side of a federated job: a SuperNode dialling the aggregator's SuperLink, a
loop answering its rounds with Cove's ClientApp, and each round's local DP training in the
runner's sandbox (see exchange.federated for the whole flow)."""
