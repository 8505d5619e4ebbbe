"""The owner's node against a real chain: it serves exactly what the chain names for its
runner, takes the owner's documents before they are published, refuses bad requests with
one sentence, and buyers refuse what a dishonest endpoint serves, naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from compute_to_data.node.gateway import MemoryBlockSource, gateway_routes
from compute_to_data.node.service import Listen, OwnerNode
from conftest import PATIENTS_SCHEMA, make_table
from exchange.http_server import HttpServer, build_app
from exchange.accounts import dev_account
from exchange.catalog import dataset_view
from exchange.chain.anvil import ChainInfo
from exchange.chain.deployment import Deployment
from exchange.client import CoveClient
from exchange.errors import ContentUnavailable, EndpointUnreachable
from exchange.policy import parse_terms
from exchange.publish import publish_dataset
from exchange.storage import Cid, compute_cid

pytestmark = pytest.mark.chain

RUNNER = 5
TIMEOUT = 10


@pytest.fixture
def clients(chain: ChainInfo, deployment: Deployment, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`clients(name, account)`: a client with a home of its own (one per name)."""

    def make(name: str, account: int) -> CoveClient:
        return CoveClient.open(chain.rpc_url, dev_account(account), tmp_path / name, hub=deployment.cove)

    return make


@pytest.fixture
def node(clients) -> Iterator[OwnerNode]:  # type: ignore[no-untyped-def]
    with OwnerNode(clients("runner", RUNNER), dev_account(RUNNER).address, Listen(port=0)) as running:
        assert running.announce(running.url) is True
        assert running.announce(running.url) is False  # already on-chain: no second transaction
        yield running


def raw(node: OwnerNode, cid: object) -> requests.Response:
    return requests.get(f"{node.url}/ipfs/{cid}?format=raw", timeout=TIMEOUT)


def publish(owner: CoveClient, folder: Path, name: str, **terms: str) -> tuple[int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    make_table(seed=len(name)).to_csv(path, index=False)
    terms = {"price": "0", "free_cap": "3", "budget": "4", "per_job_cap": "2", **terms}
    result = publish_dataset(owner, path, name=name, terms=parse_terms(**terms), schema=PATIENTS_SCHEMA,
                             runner=dev_account(RUNNER).address)
    return result.dataset_id, path


def test_the_node_serves_exactly_what_the_chain_names(node: OwnerNode, clients, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner = clients("hospital", 0)
    dataset_id, private = publish(owner, tmp_path / "premises", "patients", model_families="mlp")
    metadata_cid = dataset_view(owner, dataset_id).metadata_cid
    served = raw(node, metadata_cid)
    assert served.status_code == 200 and compute_cid(served.content) == compute_cid(owner.store.get(metadata_cid))
    owner.index.sync()
    lists_cid = Cid.from_raw_digest(bytes.fromhex(owner.index.latest_policy(dataset_id)["lists_digest"][2:]))  # type: ignore[index]
    lists = raw(node, lists_cid)  # the model-family list behind the policy's root
    assert lists.status_code == 200 and lists.json()["model_families"] == ["mlp"]

    # The private CSV, and any other local file, is not public: 404, even when it sits in the
    # node's own store (as a careless copy would).
    for path in (private, node.client.home.root / "node" / "offers.sqlite"):
        cid = compute_cid(path.read_bytes())
        assert raw(node, cid).status_code == 404
        node.client.store.put(path.read_bytes())
        response = raw(node, cid)
        assert response.status_code == 404 and "not served by this node" in response.text
    # A document offered but never published is not served either.
    offered = requests.post(f"{node.url}/cove/v1/documents", data=b'{"allowlist":["0x00000000000000000000000000000000000000aa"]}',
                            timeout=TIMEOUT)  # fmt: skip
    assert offered.status_code == 201
    assert raw(node, offered.json()["cid"]).status_code == 404
    # Control: the same node still serves the published metadata.
    assert raw(node, metadata_cid).status_code == 200


def test_bad_requests_get_one_sentence(node: OwnerNode) -> None:
    malformed = raw(node, "bafy-not-a-cid")
    assert malformed.status_code == 400 and "is not a valid content ID" in malformed.text
    assert malformed.text.count("\n") <= 1 and "Traceback" not in malformed.text
    assert requests.get(f"{node.url}/ipfs/{'b' * 3000}", timeout=TIMEOUT).status_code == 414
    assert requests.get(f"{node.url}/ipfs/bafkqaaa?format=raw", headers={"X-Big": "x" * 20_000}, timeout=TIMEOUT).status_code in (400, 431)
    assert requests.post(f"{node.url}/ipfs/bafkqaaa", data=b"x", timeout=TIMEOUT).status_code in (405, 413)
    # Offers: only Cove documents, at most one block.
    big = b'{"allowlist":["' + b"a" * 300_000 + b'"]}'
    too_big = requests.post(f"{node.url}/cove/v1/documents", data=big, timeout=TIMEOUT)
    assert too_big.status_code == 413 and "at most 262144 bytes" in too_big.json()["error"]
    not_cove = requests.post(f"{node.url}/cove/v1/documents", data=b"name,age\nAda,36\n", timeout=TIMEOUT)
    assert not_cove.status_code == 422 and "only Cove metadata and allowlist documents" in not_cove.json()["error"]
    assert requests.get(f"{node.url}/cove/v1/documents", timeout=TIMEOUT).status_code == 405
    # The probe path says it is a trustless gateway; "/" says whose node it is.
    assert raw(node, "bafkqaaa").status_code == 200
    about = requests.get(f"{node.url}/", timeout=TIMEOUT).json()
    assert about["runner"] == dev_account(RUNNER).address and about["service"] == "cove-node"


class TamperingGateway:
    """A dishonest endpoint: it answers every raw block request with altered bytes of a real one."""

    def __init__(self, honest: bytes):
        self.honest = honest

    async def serve(self, request: Request) -> Response:
        altered = self.honest[:-2] + b"!}"
        return Response(altered, headers={"Content-Type": "application/vnd.ipld.raw"})


def test_buyers_refuse_tampered_content_and_name_the_endpoint(clients, chain: ChainInfo, tmp_path: Path, cove) -> None:  # type: ignore[no-untyped-def]
    owner = clients("hospital", 0)
    dataset_id, _ = publish(owner, tmp_path / "premises", "registry")  # the runner has no endpoint yet
    metadata_cid = dataset_view(owner, dataset_id).metadata_cid
    document = owner.store.get(metadata_cid)
    liar = TamperingGateway(document)
    honest_source = MemoryBlockSource()
    honest_source.add_content(document)
    runner = clients("runner", RUNNER)
    with HttpServer(build_app([Route("/ipfs/{rest:path}", liar.serve)])) as bad, \
         HttpServer(build_app(gateway_routes(honest_source))) as gateway:  # fmt: skip
        runner.session.transact(runner.cove.functions.setEndpoint(bad.url))
        buyer = clients("scientist", 1)
        with pytest.raises(ContentUnavailable) as refused:
            dataset_view(buyer, dataset_id)
        message = str(refused.value)
        assert f"{bad.url} served bytes that do not match the CID (refused)" in message
        assert f"metadata of dataset #{dataset_id} ({metadata_cid})" in message and "--gateway URL" in message
        assert not buyer.store.has(metadata_cid)  # nothing altered was kept

        # The CLI says the same in one sentence; with a gateway that has the document, it works.
        where = ("--home", str(tmp_path / "cli-buyer"), "--rpc", chain.rpc_url, "--hub", runner.cove.address)
        shown = cove("dataset", "show", str(dataset_id), *where)
        assert shown.exit_code != 0 and "served bytes that do not match the CID" in shown.stderr
        fixed = cove("dataset", "show", str(dataset_id), "--json", *where, "--gateway", gateway.url)
        assert fixed.exit_code == 0 and fixed.json()["metadata"]["name"] == "registry"


def test_an_endpoint_that_is_down_is_named_and_a_gateway_can_stand_in(clients, chain: ChainInfo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner = clients("hospital", 0)
    dataset_id, _ = publish(owner, tmp_path / "premises", "cohort")
    runner = clients("runner", RUNNER)
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    runner.session.transact(runner.cove.functions.setEndpoint(dead))
    buyer = clients("scientist", 1)
    with pytest.raises(ContentUnavailable) as down:
        dataset_view(buyer, dataset_id)
    assert f"{dead} did not answer" in str(down.value) and "try again later" in str(down.value)

    # A pinning service or gateway that holds the same CIDs (here, a CAR copied from the owner).
    metadata_cid = dataset_view(owner, dataset_id).metadata_cid
    pinned = MemoryBlockSource()
    pinned.add_content(owner.store.get(metadata_cid))
    with HttpServer(build_app(gateway_routes(pinned))) as gateway:
        elsewhere = CoveClient.open(chain.rpc_url, dev_account(1), tmp_path / "laptop", hub=buyer.deployment.cove,
                                    gateways=[gateway.url])  # fmt: skip
        assert dataset_view(elsewhere, dataset_id).metadata.name == "cohort"  # type: ignore[union-attr]


def test_publishing_to_an_endpoint_that_is_down_sends_nothing(clients, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = clients("runner", RUNNER)
    runner.session.transact(runner.cove.functions.setEndpoint("http://127.0.0.1:9"))
    owner = clients("hospital", 0)
    count = owner.session.call(owner.cove.functions.datasetCount())
    with pytest.raises(EndpointUnreachable) as down:
        publish(owner, tmp_path / "premises", "late")
    assert "The runner's endpoint http://127.0.0.1:9 does not answer" in str(down.value)
    assert owner.session.call(owner.cove.functions.datasetCount()) == count  # nothing on chain
