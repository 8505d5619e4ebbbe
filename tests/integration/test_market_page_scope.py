"""What an owner's endpoint shows on its market page: only its runner's datasets, from its own
store. A visitor can never make it send a request to a server the chain names, which would
let anyone who publishes a dataset point the owner's premises at any URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from exchange.accounts import dev_account
from exchange.client import CoveClient
from exchange.http_server import HttpServer, build_app
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.storage import compute_cid
from exchange.ui import MarketPage
from conftest import PATIENTS_SCHEMA, make_table

pytestmark = pytest.mark.chain

RUNNER, OTHER_RUNNER = dev_account(5).address, dev_account(6).address


class RecordingEndpoint:
    """An endpoint the chain names for RUNNER: it takes the owner's documents at publication,
    then serves nothing and counts what it is asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def take(self, request: Request) -> JSONResponse:
        return JSONResponse({"cid": str(compute_cid(await request.body()))}, 201)

    async def serve(self, request: Request) -> PlainTextResponse:
        self.requests.append(request.url.path)
        return PlainTextResponse("no such block", 404)


@pytest.fixture
def published(client_for, tmp_path: Path) -> Iterator[tuple[CoveClient, int, RecordingEndpoint]]:  # type: ignore[no-untyped-def]
    owner = client_for(0)
    endpoint = RecordingEndpoint()
    routes = [Route("/ipfs/{rest:path}", endpoint.serve), Route("/cove/v1/documents", endpoint.take, methods=["POST"])]
    with HttpServer(build_app(routes)) as server:
        client_for(5).session.transact(client_for(5).cove.functions.setEndpoint(server.url))
        path = tmp_path / "patients.csv"
        make_table(rows=200, seed=3).to_csv(path, index=False)
        terms = parse_terms(budget="4", per_job_cap="2", free_cap=3)
        dataset_id = publish_dataset(owner, path, name="Patients", terms=terms, schema=PATIENTS_SCHEMA, runner=RUNNER).dataset_id
        yield owner, dataset_id, endpoint


def _get(page: MarketPage, path: str) -> requests.Response:
    with HttpServer(build_app(page.routes())) as server:
        return requests.get(server.url + path, timeout=60)


def test_an_endpoint_shows_its_runners_datasets_and_no_one_elses(published, cove_home: Path) -> None:  # type: ignore[no-untyped-def]
    owner, dataset_id, _ = published
    mine, theirs = MarketPage(owner, RUNNER), MarketPage(owner, OTHER_RUNNER)
    assert 'data-dataset="%d"' % dataset_id in _get(mine, "/").text
    assert _get(mine, f"/datasets/{dataset_id}").status_code == 200
    assert 'data-dataset="' not in _get(theirs, "/").text
    refused = _get(theirs, f"/datasets/{dataset_id}")
    assert refused.status_code == 404 and f"Dataset #{dataset_id} is not served by this endpoint" in refused.text


def test_an_endpoint_never_fetches_from_a_server_the_chain_names(published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner, dataset_id, endpoint = published
    # A home that holds none of the documents: the page must do without them, not fetch them.
    elsewhere = CoveClient.open(owner.session.w3.provider.endpoint_uri, None, tmp_path / "empty-home",
                                hub=owner.deployment.cove)  # fmt: skip
    out_of_reach = _get(MarketPage(elsewhere, RUNNER), f"/datasets/{dataset_id}")
    assert out_of_reach.status_code == 502 and "is not in this store, and nothing is fetched from elsewhere here" in out_of_reach.text
    assert "(metadata out of reach)" in _get(MarketPage(elsewhere, RUNNER), "/").text
    assert endpoint.requests == []
    # Control: `cove ui` (the whole market, on a buyer's machine) does fetch from that endpoint.
    assert _get(MarketPage(elsewhere), f"/datasets/{dataset_id}").status_code == 502
    assert endpoint.requests and all(path.startswith("/ipfs/") for path in endpoint.requests)
