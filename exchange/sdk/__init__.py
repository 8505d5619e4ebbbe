"""Cove's notebook SDK: browse, buy, train with DP, verify and evaluate in a few calls.

    from exchange import Cove, Spec
    cove = Cove.local()

See `exchange.sdk.cove` for the walkthrough. Every refusal is a CoveError with one
sentence; in IPython it shows as that one line, without a traceback.
"""

from exchange.errors import CoveError
from exchange.ml.spec import ModelSpec
from exchange.sdk import plots
from exchange.sdk.cove import Cove, RunnerProcess
from exchange.sdk.dataset import Dataset, Policy
from exchange.sdk.errors import JobFailed, JobRefunded, JobTimeout, VerificationFailed
from exchange.sdk.ipython import install as install_ipython_handler
from exchange.sdk.job import Checks, Federation, Job, Provenance
from exchange.sdk.spec import Spec

__all__ = [
    "Checks",
    "Cove",
    "CoveError",
    "Dataset",
    "Federation",
    "Job",
    "JobFailed",
    "JobRefunded",
    "JobTimeout",
    "ModelSpec",
    "Policy",
    "Provenance",
    "RunnerProcess",
    "Spec",
    "VerificationFailed",
    "install_ipython_handler",
    "plots",
]
