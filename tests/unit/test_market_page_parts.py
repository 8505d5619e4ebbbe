"""The market page's parts alone: number formats, the ledger chart, the job template's verdict."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest

from exchange.jobs import JobInfo, RequestedJob
from exchange.provenance import Check, ProvenanceRecord, sign
from exchange.ui.app import ServedBy, job_context, templates
from exchange.ui.format import number, price
from exchange.units import delta_text as delta
from exchange.ui.ledger_chart import Charge, Frame, axis_top, ledger_svg
from exchange.paging import Slice, paginate
from exchange.ui.views import JobPage, Market
from test_provenance import RUNNER, record_fields


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("2.50"), "2.5"), (Decimal("1E+1"), "10"), (4.999999, "4.999999"), (1.0200000000000001, "1.02"),
     (0.177686, "0.177686"), (3, "3"), (None, "")],
)  # fmt: skip
def test_numbers_are_written_as_people_write_them(value: object, text: str) -> None:
    assert number(value) == text  # type: ignore[arg-type]


def test_delta_reads_as_a_power_of_ten_and_prices_name_their_token() -> None:
    assert delta(Decimal("1e-5")) == "1e-5" and delta(Decimal("0.00001")) == "1e-5"
    assert delta(Decimal("2.5e-7")) == "2.5e-7" and delta(Decimal("0.01")) == "0.01"
    assert price(Decimal("2.5"), "tUSD") == "2.5 tUSD" and price(Decimal(0), "free") == "free"


def _circles(svg: str) -> list[tuple[float, float, float]]:
    found = re.findall(r'<circle class="charge" cx="([\d.]+)" cy="([\d.]+)" r="4" data-epsilon="([\d.e-]+)"', svg)
    return [(float(x), float(y), float(e)) for x, y, e in found]


def test_the_chart_draws_each_charge_in_order_against_the_budget_line() -> None:
    charges = [Charge("publication", 0.18, "pub."), Charge("job #1", 1.02, "#1"), Charge("job #2", 2.5, "#2")]
    svg = ledger_svg(charges, 4.0, "Ledger <of> #1")
    circles = _circles(svg)
    assert [e for _, _, e in circles] == [0.18, 1.02, 2.5]
    xs, ys = [x for x, _, _ in circles], [y for _, y, _ in circles]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # later charges to the right and higher
    frame = Frame(3, axis_top(charges, 4.0))
    budget_y = float(re.search(r'<line class="budget"[^>]* y1="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert budget_y == pytest.approx(frame.y(4.0), abs=0.05) and budget_y < min(ys)  # under budget: below the line
    assert "Ledger &lt;of&gt; #1" in svg and "<of>" not in svg  # the title is escaped
    assert 'role="img"' in svg and "<desc" in svg
    assert re.findall(r'<text class="tick" x="[\d.]+" y="236" text-anchor="middle">([^<]+)</text>', svg) == ["pub.", "#1", "#2"]


def test_a_charge_over_the_axis_budget_is_drawn_above_the_budget_line() -> None:
    # Control for the test above: the order of y coordinates really follows ε.
    charges = [Charge("publication", 0.5), Charge("job #1", 6.0)]
    svg = ledger_svg(charges, 4.0, "over")
    frame = Frame(2, axis_top(charges, 4.0))
    assert _circles(svg)[1][1] < frame.y(4.0)


def test_an_empty_ledger_still_draws_its_budget() -> None:
    svg = ledger_svg([], 3.0, "empty")
    assert _circles(svg) == [] and 'data-epsilon="3.0"' in svg and "Nothing charged yet" in svg


def _job_page(checks: list[Check]) -> JobPage:
    record = ProvenanceRecord(**record_fields())
    info = JobInfo(job_id=7, dataset_id=3, consumer=RUNNER.address, status="completed", deadline=1_800_000_000,
                   runner=RUNNER.address, weights_digest=b"\0" * 32, weights_hash=b"\0" * 32,
                   provenance_hash=b"\0" * 32)  # fmt: skip
    request = RequestedJob(job_id=7, dataset_id=3, consumer=RUNNER.address, spec_hash=b"\1" * 32, spec=b"",
                           dp=(1_100_000, 10_000_000, 300, 1_000_000, 3), curve_hash=b"\0" * 32,
                           model_family=b"\0" * 32, deadline=1_800_000_000, encryption_key=b"", tx="0x")  # fmt: skip
    return JobPage(info=info, request=request, spec=None, epsilon=1.0, reason=None, provenance=sign(record, RUNNER),
                   provenance_cid="bafkqaaa", provenance_error=None, checks=checks)  # fmt: skip


def _render_job(checks: list[Check], kind: str = "local", raw: bool = False) -> str:
    served = ServedBy(kind, 31337, "0x" + "11" * 20)  # type: ignore[arg-type]
    html = templates(served).get_template("job.html").render(section="jobs", **job_context(_job_page(checks)))
    return html if raw else unescape(html)


def test_the_job_page_says_all_passed_only_when_every_check_passed() -> None:
    passed = [Check(name="signature", passed=True, reason="ok"), Check(name="record_hash", passed=True, reason="ok")]
    html = _render_job(passed)
    assert "All 2 public checks passed." in html and "Some checks failed" not in html
    assert html.count("cove ui (this machine)") == 3  # the intro and each check's "computed by"
    assert "noise multiplier 1.1, sample rate 0.01, 300 steps, clipping norm 1, 3 epoch(s)" in html
    # Control: one failed check turns the verdict, and the row says so.
    failed = [*passed[:1], Check(name="record_hash", passed=False, reason="The record hashes to 0xab, not <b>.")]
    html = _render_job(failed)
    assert "Some checks failed: do not trust this record." in html and "All 2 public checks" not in html
    assert '<tr data-check="record_hash" class="failed">' in html and "✗ failed" in html
    assert "not &lt;b&gt;." in _render_job(failed, raw=True)  # a reason is text, never markup


def test_the_endpoints_checks_are_labelled_as_the_owners_and_point_to_checking_elsewhere() -> None:
    html = _render_job([Check(name="signature", passed=True, reason="ok")], kind="endpoint")
    assert "Checked by the owner's endpoint" in html and "cove verify 7" in html
    assert "cove ui (this machine)" not in html


def test_listings_are_cut_into_pages_and_out_of_range_pages_are_clamped() -> None:
    rows = list(range(1, 121))
    shown, where = paginate(rows, 2)
    assert shown == list(range(51, 101)) and (where.number, where.count, where.first, where.last) == (2, 3, 51, 100)
    assert paginate(rows, 99)[1].number == 3 and paginate(rows, 99)[0] == list(range(101, 121))
    assert paginate(rows, 0)[1].number == 1
    assert paginate([], 1) == ([], Slice(1, 1, 0, 0, 0))


def test_the_pager_keeps_the_search_and_shows_only_the_links_there_are() -> None:
    rows = [{"id": i, "name": f"set {i}", "rows": 10, "columns": 2, "price": 0, "currency": "free", "budget_epsilon": 1.0,
             "per_job_epsilon": 1.0, "owner": "0x" + "22" * 20, "tags": ["bench"]} for i in range(1, 121)]  # fmt: skip
    shown, where = paginate(rows, 2)
    market = Market(shown, where, 400, [("bench", 120)], "set", "bench")
    served = ServedBy("local", 31337, "0x" + "11" * 20)
    html = unescape(templates(served).get_template("datasets.html").render(section="datasets", market=market,
                                                                         base="/?q=set&tag=bench&"))  # fmt: skip
    assert 'href="/?q=set&tag=bench&page=1">← Previous' in html and 'href="/?q=set&tag=bench&page=3">Next →' in html
    assert "51–100 of 120 of 400 datasets matching “set” tagged bench." in html
    first = unescape(templates(served).get_template("datasets.html").render(
        section="datasets", market=Market(*paginate(rows, 1), 400, [], "", ""), base="/?"))  # fmt: skip
    assert "Previous" not in first and 'href="/?page=2">Next →' in first
