"""`cove publish`, `cove datasets`, `cove dataset show`, `cove policy show|set`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from exchange.cli.lazy import LazyName
from exchange.cli.options import chain_command, AccountOption, HomeOption, JsonOption, RpcOption, layout, open_client
from exchange.cli.output import console, fields, frame_records, print_json, success, table
from exchange.cli.policy_options import (
    Allow, AllowFile, Budget, ComputeOnly, Delta, Expiry, Family, FreeCap, MaxEpochs, PerJobCap, Price, Token,
    policy_fields,
)  # fmt: skip
from exchange.errors import InputError, PolicyError
from exchange.paging import PAGE_SIZE, paginate
from exchange.units import delta_text

if TYPE_CHECKING:
    from exchange.catalog import DatasetView
    from exchange.policy import PolicyTerms

# What `publish` calls, bound on first use: these modules import pandas and web3 (seconds),
# which every other command would pay for at start. The other commands import in their body.
DatasetSchema = LazyName("exchange.datasets", "DatasetSchema")
ConsortiumBook = LazyName("exchange.governance", "ConsortiumBook")
find_consortium = LazyName("exchange.governance", "find_consortium")
parse_terms = LazyName("exchange.policy", "parse_terms")
publish_dataset = LazyName("exchange.publish", "publish_dataset")
# exchange.datasets.dp_count.DEFAULT_COUNT_NOISE, which importing would import pandas (its
# package does); tests/unit/test_cli_imports.py keeps the two equal.
DEFAULT_COUNT_NOISE = 20.0

dataset_app = typer.Typer(help="Inspect one dataset.", no_args_is_help=True)
policy_app = typer.Typer(help="Show or change a dataset's access policy.", no_args_is_help=True)


@chain_command
def publish(
    file: Path = typer.Argument(..., help="The private CSV or Parquet file (it stays where it is)."),
    name: str = typer.Option(..., "--name", help="Public name of the dataset."),
    schema_file: Path | None = typer.Option(None, "--schema", help="The declared public schema (JSON; start from `cove schema draft FILE`)."),
    count_noise: str = typer.Option(str(DEFAULT_COUNT_NOISE), "--count-noise", help="σ of the noise on the published row count (its ε is charged to the budget)."),
    description: str = typer.Option("", "--description", help="Public description."),
    license: str = typer.Option("proprietary", "--license", help="License of the trained models' use."),
    tags: list[str] | None = typer.Option(None, "--tag", help="Public tag (repeatable)."),
    price: Price = None,
    token: Token = None,
    budget: Budget = None,
    per_job_cap: PerJobCap = None,
    delta: Delta = None,
    max_epochs: MaxEpochs = None,
    free_cap: FreeCap = None,
    expiry: Expiry = None,
    allow: Allow = None,
    allowlist_file: AllowFile = None,
    family: Family = None,
    compute_only: ComputeOnly = None,
    runner: str | None = typer.Option(None, "--runner", help="Runner account address (default: the publisher)."),
    governed_by: str | None = typer.Option(None, "--governed-by", help="Consortium (name or governor address) whose votes alone may change the policy."),
    mock_rows: int = typer.Option(20, "--mock-rows", min=1, max=1000, help="Rows in the public mock sample."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Publish a dataset: validate it, commit to it, publish its metadata and mint it on-chain."""
    given = policy_fields(
        price=price, token=token, budget=budget, per_job_cap=per_job_cap, delta=delta, max_epochs=max_epochs,
        free_cap=free_cap, expiry=expiry, allow=allow, allowlist_file=allowlist_file, families=family,
        compute_only=compute_only,
    )  # fmt: skip
    for required, option in (("budget", "--budget"), ("per_job_cap", "--per-job-cap")):
        if required not in given:
            raise PolicyError(f"Publishing needs the privacy policy: pass {option}.")
    if schema_file is None:
        raise InputError(
            "Publishing needs the declared public schema: pass --schema FILE (write a draft with "
            f"`cove schema draft {file} > schema.json`, then edit it to what is public knowledge)."
        )
    schema = DatasetSchema.load(schema_file)
    given.setdefault("price", "0")
    client = open_client(home, rpc, account)
    if "payment_token" not in given and str(given["price"]).strip() not in ("0", "0.0"):
        given["payment_token"] = client.deployment.payment_token
    terms = parse_terms(**given)
    controller = None
    if governed_by is not None:
        controller = find_consortium(client, ConsortiumBook(layout(home).deployments), governed_by).timelock
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=json) as progress:  # fmt: skip
        # A CSV's row count is unknown until the end, so the bar pulses and counts the rows
        # read (on the owner's screen only; a re-read of the file counts again).
        reading = progress.add_task("validating, committing and publishing...", total=None, rows="")
        result = publish_dataset(
            client, file, name=name, terms=terms, schema=schema, count_noise=count_noise, description=description,
            license=license, tags=tags or [], runner=runner, controller=controller, mock_rows=mock_rows,
            progress=lambda rows: progress.update(reading, rows=f"{rows:,} rows read"),
        )  # fmt: skip
    if json:
        print_json(result)
    else:
        success(f"published dataset #{result.dataset_id} '{name}' (metadata {result.metadata_cid}); public row count "
                f"{result.rows} (with noise σ {count_noise})")
        console.print(f"  datatoken {result.datatoken}, transaction {result.tx_hash}, gas {result.gas_used:,}")
        if result.endpoint:
            console.print(f"  buyers read its metadata from the runner's endpoint {result.endpoint}")
        else:
            console.print("  [yellow]its runner announces no endpoint on-chain yet[/yellow], so only this home holds the "
                          "metadata: start `cove runner start --listen …`, then `cove dataset push "
                          f"{result.dataset_id}`")  # fmt: skip


@chain_command
def datasets(
    search: str = typer.Option("", "--search", help="Only the datasets whose id, name, owner or tags contain this text (any case)."),
    tag: str = typer.Option("", "--tag", help="Only the datasets with this tag."),
    limit: int | None = typer.Option(
        None, "--limit", min=0,
        help=f"Datasets per page (default: {PAGE_SIZE} in the table, every one with --json; 0: every one).",
    ),
    page: int = typer.Option(1, "--page", min=1, help="Which page of --limit datasets to show."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """List the published datasets, a page at a time (--search and --tag narrow the list)."""
    from exchange.catalog import dataset_listing, search_listing

    # Typed per column as the DataFrame this command used to print (a price column with one
    # paid dataset is float throughout), so the output stays what scripts already read.
    client = open_client(home, rpc, None, needs_account=False)
    matching = frame_records(search_listing(dataset_listing(client), search, tag))
    size = (0 if json else PAGE_SIZE) if limit is None else limit
    per_page = size or max(len(matching), 1)  # 0: every one, on one page
    records, where = paginate(matching, page, per_page)
    if page > where.count:
        pages = "is 1 page" if where.count == 1 else f"are {where.count:,} pages"
        raise InputError(f"There {pages} of {per_page:,} datasets; ask for --page 1 to {where.count:,}.")
    if json:
        print_json(records)
        return
    if not records:
        narrowed = " and ".join(f for f in (f"contains '{search}'" if search else "", f"has the tag '{tag}'" if tag else "") if f)
        console.print(f"No dataset {narrowed}." if narrowed else "No dataset is published on this hub yet.",
                      markup=False, highlight=False)  # fmt: skip
        return
    rows = [[r["id"], r["name"], r["rows"], r["columns"], "free" if r["currency"] == "free" else f"{r['price']:g} {r['currency']}",
             f"{r['budget_epsilon']:g}", f"{r['per_job_epsilon']:g}", ", ".join(r["tags"]), r["owner"]] for r in records]  # fmt: skip
    console.print(table("Datasets", ["id", "name", "rows", "columns", "price", "budget ε", "per-job ε", "tags", "owner"], rows,
                        whole={"owner"}))  # fmt: skip
    if where.count > 1:
        more = f"--page {where.number + 1} for the next, " if where.number < where.count else ""
        console.print(f"datasets {where.first:,} to {where.last:,} of {where.matching:,} (page {where.number} of "
                      f"{where.count}); {more}--limit 0 for every one", highlight=False)  # fmt: skip


def _policy_pairs(view_policy: PolicyTerms, version: int, symbol: str) -> list[tuple[str, Any]]:
    p = view_policy
    return [
        ("version", version),
        ("price", "free" if p.is_free else f"{p.price} {symbol} per credit"),
        ("payment token", p.payment_token or "-"),
        ("free credits per address", p.free_cap if p.is_free else "-"),
        ("privacy budget ε", p.budget),
        ("per-job cap ε", p.per_job_cap),
        ("δ", delta_text(p.delta)),
        ("max epochs", p.max_epochs),
        ("access", "compute only" if p.compute_only else "compute and download"),
        ("expires", p.expiry.isoformat() if p.expiry else "never"),
        ("allowlist", ", ".join(p.allowlist) if p.allowlist else "open to everyone"),
        ("model families", ", ".join(p.model_families) if p.model_families else "any the runner supports"),
    ]


@dataset_app.command("show")
@chain_command
def show(
    dataset_id: int = typer.Argument(..., help="Dataset id."),
    mock: bool = typer.Option(True, "--mock/--no-mock", help="Show the mock sample."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Show a dataset: metadata, schema, policy and its schema-only mock sample."""
    from exchange.catalog import dataset_view

    view = dataset_view(open_client(home, rpc, None, needs_account=False), dataset_id)
    if json:
        print_json(_view_json(view))
        return
    meta = view.metadata
    console.print(fields(f"Dataset #{view.dataset_id}", [
        ("name", meta.name), ("description", meta.description), ("license", meta.license),
        ("tags", ", ".join(meta.tags)),
        ("rows", view.rows), ("privacy unit", "one row"), ("commitment", view.commitment),
        ("metadata CID", view.metadata_cid), ("owner", view.owner), ("policy controller", view.controller),
        ("runner", view.runner), ("datatoken", view.datatoken),
    ]))  # fmt: skip
    console.print(fields("Policy", _policy_pairs(view.policy, view.policy_version, view.payment_symbol)))
    console.print(table("Schema", ["column", "kind", "nullable", "range / categories"], [
        [c.name, c.kind, "yes" if c.nullable else "no",
         ", ".join(c.categories) if c.categories else
         f"{c.minimum} .. {c.maximum}" if c.minimum is not None else "-"]
        for c in meta.schema_.columns
    ]))  # fmt: skip
    if mock:
        frame = meta.mock_frame()
        console.print(table("Mock sample (generated from the schema alone, not from private rows)",
                            list(frame.columns), frame.astype(object).where(frame.notna(), None).values.tolist()))  # fmt: skip


@dataset_app.command("push")
@chain_command
def push(
    dataset_id: int = typer.Argument(..., help="Dataset id."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Hand a dataset's metadata and allowlists (from this home) to its runner's endpoint again."""
    from exchange.documents import push_dataset_documents

    endpoint, cids = push_dataset_documents(open_client(home, rpc, None, needs_account=False), dataset_id)
    if json:
        print_json({"dataset_id": dataset_id, "endpoint": endpoint, "cids": [str(c) for c in cids]})
    else:
        success(f"{len(cids)} document(s) of dataset #{dataset_id} handed to {endpoint}")


def _view_json(view: DatasetView) -> dict[str, Any]:
    data = {k: v for k, v in view.__dict__.items() if k not in ("metadata", "policy")}
    data["policy"] = view.policy.model_dump(mode="json")
    data["metadata"] = view.metadata.model_dump(mode="json", by_alias=True)
    return data


@policy_app.command("show")
@chain_command
def policy_show(
    dataset_id: int = typer.Argument(..., help="Dataset id."),
    home: HomeOption = None,
    rpc: RpcOption = None,
    json: JsonOption = False,
) -> None:
    """Show a dataset's current access policy."""
    from exchange.catalog import policy_of

    client = open_client(home, rpc, None, needs_account=False)
    terms, version, _ = policy_of(client, dataset_id)
    if json:
        print_json({"dataset_id": dataset_id, "version": version, **terms.model_dump(mode="json")})
    else:
        console.print(fields(f"Policy of dataset #{dataset_id}", _policy_pairs(terms, version, client.token_symbol(terms.payment_token))))


@policy_app.command("set")
@chain_command
def policy_set(
    dataset_id: int = typer.Argument(..., help="Dataset id."),
    price: Price = None,
    token: Token = None,
    budget: Budget = None,
    per_job_cap: PerJobCap = None,
    delta: Delta = None,
    max_epochs: MaxEpochs = None,
    free_cap: FreeCap = None,
    expiry: Expiry = None,
    allow: Allow = None,
    allowlist_file: AllowFile = None,
    open_: bool = typer.Option(False, "--open", help="Remove the allowlist: anyone may buy."),
    family: Family = None,
    any_family: bool = typer.Option(False, "--any-family", help="Remove the model-family restriction."),
    compute_only: ComputeOnly = None,
    home: HomeOption = None,
    rpc: RpcOption = None,
    account: AccountOption = None,
    json: JsonOption = False,
) -> None:
    """Change some fields of a dataset's policy (the others keep their values). Only its controller may."""
    from exchange.catalog import policy_of
    from exchange.policy_update import set_policy

    client = open_client(home, rpc, account)
    current, _, _ = policy_of(client, dataset_id)
    changes = policy_fields(
        price=price, token=token, budget=budget, per_job_cap=per_job_cap, delta=delta, max_epochs=max_epochs,
        free_cap=free_cap, expiry=expiry, allow=allow, allowlist_file=allowlist_file, families=family,
        compute_only=compute_only,
    )  # fmt: skip
    if open_:
        changes["allowlist"] = []
    if any_family:
        changes["model_families"] = []
    if not changes:
        raise PolicyError("Nothing to change: pass at least one policy option (see --help).")
    if "price" in changes and "payment_token" not in changes and current.payment_token is None:
        changes["payment_token"] = client.deployment.payment_token
    terms = parse_terms(**(current.model_dump() | changes))
    receipt_hash, version = set_policy(client, dataset_id, terms)
    if json:
        print_json({"dataset_id": dataset_id, "version": version, "tx_hash": receipt_hash, **terms.model_dump(mode="json")})
    else:
        success(f"policy of dataset #{dataset_id} is now version {version} (transaction {receipt_hash})")

