"""Model specs, the privacy accountant, model building and weights: shared by the buyer's
SDK (to write and check a spec, price its privacy and load the weights it gets back) and
the owner's runner (which trains)."""
