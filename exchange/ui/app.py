"""The market page's HTTP side: Starlette routes that render the views as plain HTML.

Pages are rendered on the server from templates (autoescaped) and one stylesheet served
from here: no script, no CDN. One client serves every request, one request at a time (its
event index is one SQLite connection and a sync must not interleave with another).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Literal
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from exchange.client import CoveClient
from exchange.content import ContentSources
from exchange.errors import CoveError, InputError
from exchange.ml.accounting import CLIP_SCALE, NOISE_SCALE, SAMPLE_RATE_SCALE
from exchange.ui import format as fmt
from exchange.ui import views
from exchange.ui.ledger_chart import Charge, ledger_svg
from exchange.units import delta_text

log = logging.getLogger("cove.ui")

MOCK_ROWS_SHOWN = 10
_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"


@dataclass(frozen=True)
class ServedBy:
    """Who renders the page, said on every page and beside every check it computed."""

    kind: Literal["endpoint", "local"]
    chain_id: int
    hub: str

    @property
    def label(self) -> str:
        return "the dataset owner's endpoint" if self.kind == "endpoint" else "cove ui on this machine"

    @property
    def checker(self) -> str:
        return "the owner's endpoint" if self.kind == "endpoint" else "cove ui (this machine)"


def templates(served: ServedBy) -> Environment:
    """The page's templates, autoescaped, with the number formats and who serves them."""
    environment = Environment(loader=PackageLoader("exchange.ui"), autoescape=select_autoescape(["html"]))
    environment.globals.update(
        number=fmt.number, price=fmt.price, delta=delta_text, epsilon=fmt.epsilon_fixed,
        delta_fixed=fmt.delta_fixed, served=served,
    )  # fmt: skip
    return environment


class MarketPage:
    """The read-only market over one client: datasets, a dataset, jobs, a job."""

    def __init__(self, client: CoveClient, runner: str | None = None):
        """The whole market for `cove ui`; with `runner`, an owner's endpoint: that runner's
        datasets from its own store alone, so that no visitor makes it send a request to a
        server the chain names."""
        # A client of its own: the event index's connection is not shared with the caller's threads.
        self._client = CoveClient(client.session, client.deployment, client.store, client.home,
                                  () if runner else client.gateways, client.log_range)  # fmt: skip
        if runner is not None:
            self._client.content = ContentSources(client.store, fetch=None)
        self.scope = views.Scope(runner)
        self.served = ServedBy("local" if runner is None else "endpoint", client.deployment.chain_id, client.deployment.cove)
        self._lock = threading.Lock()
        self._templates = templates(self.served)
        self._stylesheet = files("exchange.ui").joinpath("static/cove.css").read_bytes()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET", "HEAD"]),
            Route("/datasets/{dataset_id:int}", self.dataset, methods=["GET", "HEAD"]),
            Route("/jobs", self.jobs, methods=["GET", "HEAD"]),
            Route("/jobs/{job_id:int}", self.job, methods=["GET", "HEAD"]),
            Route("/static/cove.css", self.stylesheet, methods=["GET", "HEAD"]),
        ]

    async def index(self, request: Request) -> Response:
        query, tag, page = request.query_params.get("q", ""), request.query_params.get("tag", ""), _page_number(request)
        kept = urlencode({key: value for key, value in (("q", query), ("tag", tag)) if value})
        base = f"/?{kept}&" if kept else "/?"  # the pager's links keep the search
        return await self._page("datasets.html", "datasets", lambda c: {"market": views.market(c, query, tag, page, self.scope), "base": base})

    async def dataset(self, request: Request) -> Response:
        dataset_id = int(request.path_params["dataset_id"])
        return await self._page("dataset.html", "datasets", lambda c: self._dataset_context(c, dataset_id))

    async def jobs(self, request: Request) -> Response:
        page = _page_number(request)
        return await self._page("jobs.html", "jobs", lambda c: {"listing": views.jobs_listing(c, page, self.scope)})

    async def job(self, request: Request) -> Response:
        job_id = int(request.path_params["job_id"])
        return await self._page("job.html", "jobs", lambda c: self._job_context(c, job_id))

    async def stylesheet(self, request: Request) -> Response:
        return Response(self._stylesheet, media_type="text/css", headers={"Cache-Control": "public, max-age=300"})

    # ------------------------------------------------------------------ rendering

    async def _page(self, template: str, section: str, build: Any) -> Response:
        return await run_in_threadpool(self._render, template, section, build)

    def _render(self, template: str, section: str, build: Any) -> Response:
        try:
            with self._lock:
                context = build(self._client)
            html = self._templates.get_template(template).render(section=section, **context)
        except InputError as error:  # no such dataset or job
            return self._error(404, "Not found", str(error))
        except CoveError as error:  # the chain or a document out of reach
            return self._error(502, "Out of reach", str(error))
        except Exception:
            log.exception("the page %s failed", template)
            return self._error(500, "Something went wrong", "This page could not be rendered; the server's log says why.")
        return HTMLResponse(html, headers=_HEADERS)

    def _error(self, status: int, heading: str, message: str) -> Response:
        html = self._templates.get_template("error.html").render(section="", heading=heading, message=message)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def _dataset_context(self, client: CoveClient, dataset_id: int) -> dict[str, Any]:
        page = views.dataset_page(client, dataset_id, self.scope)
        charges = [Charge("publication", p["composed_epsilon"], "pub.") if p["job"] is None
                   else Charge(f"job #{p['job']}", p["composed_epsilon"], f"#{p['job']}") for p in page.ledger]  # fmt: skip
        title = f"Privacy ledger of dataset #{dataset_id}: ε spent after each charge, and the budget"
        return {
            "page": page,
            "governed": page.view.controller.lower() != page.view.owner.lower(),
            "chart": ledger_svg(charges, float(page.view.policy.budget), title),
            "mock_rows": MOCK_ROWS_SHOWN,
        }

    def _job_context(self, client: CoveClient, job_id: int) -> dict[str, Any]:
        return job_context(views.job_page(client, job_id, self.scope))


def job_context(page: views.JobPage) -> dict[str, Any]:
    """What job.html needs beyond the page: its DP parameters and deadline in people's units."""
    noise, rate, steps, clip, epochs = page.request.dp
    dp = {"noise": fmt.number(noise / NOISE_SCALE), "rate": fmt.number(rate / SAMPLE_RATE_SCALE),
          "steps": steps, "clip": fmt.number(clip / CLIP_SCALE), "epochs": epochs}  # fmt: skip
    deadline = datetime.fromtimestamp(page.info.deadline, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"page": page, "dp": dp, "deadline": deadline}


def _page_number(request: Request) -> int:
    """`?page=N`; anything else is the first page (a listing shows what there is, never an error)."""
    text = request.query_params.get("page", "1")
    return int(text) if text.isdigit() and len(text) < 9 else 1


_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
