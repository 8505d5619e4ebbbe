"""Federated jobs: one model trained over several owners' datasets, in rounds, on Flower.

The aggregator (the buyer's machine, or one the request names) runs Flower's SuperLink and
Cove's ServerApp (`exchange.federated.server`); each owner's runner joins from its own
premises as a Flower SuperNode and answers the rounds with its own loop
(`compute_to_data.federated`), training in its sandbox. Updates are summed with SecAgg+,
so the aggregator sees only their sum; each round's model digest is committed on-chain
(FederatedRounds) before the next round starts, and every runner checks the model it is
sent against that commitment.
"""
