"""The SDK's HTML: real tables with escaped cells (policy, checks, provenance), never dict dumps."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

from exchange.accounts import dev_account
from exchange.ml.accounting import ORDERS_FIXED
from exchange.policy import PolicyTerms
from exchange.provenance import Check, ProvenanceRecord, epsilon_of_curve, sha256_hex, sign
from exchange.sdk import display
from exchange.sdk.dataset import Policy
from exchange.sdk.job import Checks, Provenance
from exchange.storage.cid import compute_cid

EVIL = '<script>alert("x")</script> & <b>'


class _Cells(HTMLParser):
    """Collects the tags and the text of each th/td cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        self.tags.append(tag)
        if tag in ("td", "th"):
            self._open, self._text = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._open:
            self.cells.append(self._text)
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text += data


def parse(markup: str) -> _Cells:
    parser = _Cells()
    parser.feed(markup)
    return parser


def test_table_escapes_every_cell_and_header() -> None:
    markup = display.table([EVIL, "n"], [[EVIL, 1], [None, 2.50000001]], caption=EVIL)
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert markup.count("<tr>") == 3 and markup.startswith("<table")
    cells = parse(markup).cells
    assert cells == [EVIL, "n", EVIL, "1", "–", "2.5"]  # the browser shows the text as it was


def test_fields_is_a_two_column_table() -> None:
    markup = display.fields([("name", EVIL), ("ok", True), ("budget", Decimal("8.000"))])
    parsed = parse(markup)
    assert parsed.tags.count("tr") == 3 and parsed.tags.count("th") == 3 and parsed.tags.count("td") == 3
    assert parsed.cells == ["name", EVIL, "ok", "yes", "budget", "8"]
    assert "{" not in markup  # no dict dump


def test_policy_html_and_text() -> None:
    terms = PolicyTerms(price=Decimal("2.5"), payment_token="0x" + "11" * 20, budget=Decimal(8),
                        per_job_cap=Decimal(2), allowlist=["0x" + "22" * 20])  # fmt: skip
    policy = Policy(terms, 3, "<tUSD>", 5)
    parsed = parse(policy._repr_html_())
    pairs = dict(zip(parsed.cells[::2], parsed.cells[1::2], strict=True))
    assert pairs["price"] == "2.5 <tUSD> per credit" and pairs["privacy budget ε"] == "8"
    assert pairs["version"] == "3" and pairs["per-job cap ε"] == "2" and pairs["δ"] == "1e-5"
    assert "&lt;tUSD&gt;" in policy._repr_html_()
    assert policy.budget == Decimal(8) and policy.max_epochs == 20  # the terms' fields, as attributes
    assert "budget ε 8, at most ε 2 per job" in policy.summary() and "allowlist of 1" in policy.summary()
    assert "price" in repr(policy) and "<table" not in repr(policy)
    free = Policy(PolicyTerms(budget=Decimal(1), per_job_cap=Decimal(1), free_cap=4), 1, "free", 1)
    assert free.price_text() == "free, 4 credit(s) per address"


def test_checks_table_and_passed() -> None:
    checks = Checks([Check(name="signature", passed=True, reason="Signed by the runner."),
                     Check(name="weights_hash", passed=False, reason=EVIL)])  # fmt: skip
    assert not checks.passed and [c.name for c in checks.failed] == ["weights_hash"]
    markup = checks._repr_html_()
    assert "<script>" not in markup
    parsed = parse(markup)
    assert parsed.cells == ["check", "result", "detail", "signature", "✓ pass", "Signed by the runner.",
                            "weights_hash", "✗ FAIL", EVIL]  # fmt: skip
    assert "1 of 2 provenance checks FAILED" in markup
    good = Checks(checks[:1])
    assert good.passed and "all 1 provenance checks passed" in repr(good)
    assert not Checks([]).passed  # nothing checked is not a pass


def test_provenance_is_a_two_column_table() -> None:
    orders = ORDERS_FIXED
    curve = tuple(30_000_000 * o // 1000 for o in orders)
    runner = dev_account(2)
    record = ProvenanceRecord(
        chain_id=31337, compute_jobs="0x5FbDB2315678afecb367f032d93F642f64180aa3", job_id=7, dataset_id=3,
        dataset_commitment="0x" + "ab" * 32, spec_hash="0x" + "cd" * 32, runner=runner.address,
        dp={"noise_multiplier": 1_100_000, "sample_rate": 10_000_000, "steps": 300, "clip_norm": 1_000_000, "epochs": 3},
        rdp_orders=orders, rdp_curve=curve, epsilon=epsilon_of_curve(orders, curve, 10**13), delta=10**13,
        library_versions={"torch": "2.5.1", "opacus": "<1.6>"}, device="cpu", sandbox="bwrap",
        public_rows=2980, weights_hash=sha256_hex(b"w"), weights_cid=str(compute_cid(b"e")),
    )  # fmt: skip
    provenance = Provenance(sign(record, runner))
    markup = provenance._repr_html_()
    parsed = parse(markup)
    pairs = dict(zip(parsed.cells[::2], parsed.cells[1::2], strict=True))
    assert parsed.tags.count("th") == parsed.tags.count("td") == len(pairs)
    assert pairs["job"] == "7" and pairs["dataset"] == "3" and pairs["δ"] == "1e-5"
    assert pairs["noise multiplier σ"] == "1.1" and pairs["sample rate q"] == "0.01" and pairs["steps"] == "300"
    assert pairs["ε spent"] == f"{record.epsilon / 1e6:g}" and pairs["sandbox"] == "bwrap"
    # The tight figure: recomputed from the record's parameters, below the ledger's RDP bound.
    assert provenance.tight_epsilon is not None and 0 < provenance.tight_epsilon < record.epsilon / 1e6
    assert pairs["tight ε (PLD, not enforced)"] == f"{provenance.tight_epsilon:.4g}"
    assert pairs["libraries"] == "opacus <1.6>, torch 2.5.1" and "&lt;1.6&gt;" in markup
    assert pairs["public row count (sets q)"] == "2980" and "trained" not in pairs  # no private timing
    assert pairs["accountant"] == "RDP over 24 orders" and re.fullmatch(r"0x[0-9a-f]{130}", pairs["signature"])
    assert provenance.job_id == 7 and provenance.epsilon == record.epsilon / 1e6  # record fields as attributes
    assert "Provenance of job #7" in repr(provenance)
