"""The notebooks in notebooks/: committed without outputs, and each runs top to bottom.

Every notebook is executed with nbclient in a fresh kernel of *this* interpreter (a kernel
spec written into a temporary JUPYTER_PATH, so nothing needs installing beyond the test
extras), in its own temporary working directory and Cove home. A failing cell fails the
test with the cell and its error. Cells tagged `plot` must produce a PNG image.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WALKTHROUGHS = ("01_publish_and_browse.ipynb", "02_buy_and_train.ipynb", "03_governance.ipynb", "04_federated.ipynb")
KERNEL_NAME = "cove-notebook-test"
CELL_TIMEOUT_S = 300


def _strip_module() -> ModuleType:
    path = ROOT / "scripts" / "strip_notebooks.py"
    spec = importlib.util.spec_from_file_location("strip_notebooks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_walkthroughs_exist() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert set(WALKTHROUGHS) <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        index
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs; "
        "run scripts/strip_notebooks.py before committing"
    )
    assert _strip_module().stripped(notebook) == notebook, (
        f"{path.name} carries run metadata; run scripts/strip_notebooks.py before committing"
    )


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir holding one kernel spec: this interpreter running ipykernel."""
    data_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Cove (test interpreter)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return data_dir


@pytest.mark.chain
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(
    path: Path, kernel_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("COVE_HOME", str(tmp_path / "cove-home"))  # never the user's ~/.cove
    for variable in ("COVE_RPC_URL", "COVE_ACCOUNT", "COVE_PASSWORD", "MPLBACKEND"):
        monkeypatch.delenv(variable, raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    started = time.monotonic()
    client.execute()  # raises CellExecutionError (the cell and its error) when a cell fails
    print(f"{path.name}: {time.monotonic() - started:.1f} s")

    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    plots = [cell for cell in notebook.cells if "plot" in cell.metadata.get("tags", [])]
    for cell in plots:
        images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        assert images, f"{path.name}: this plot cell drew no image:\n{cell.source}"
    if path.name == "02_buy_and_train.ipynb":
        assert len(plots) >= 2, "02 plots accuracy against ε and the privacy budget"
