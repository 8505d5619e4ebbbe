"""A CoveError in IPython shows as one line, `CoveError: <sentence>`, with no traceback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from exchange.errors import CoveError, PrivacyError, SpecError
from exchange.sdk import ipython


class FakeShell:
    """The part of IPython's InteractiveShell the SDK uses."""

    def __init__(self) -> None:
        self.custom_exceptions: tuple = ()
        self.handler: Any = None

    def set_custom_exc(self, exc_tuple: tuple, handler: Any) -> None:
        self.custom_exceptions = exc_tuple
        self.handler = handler


def test_install_registers_a_handler_for_cove_errors() -> None:
    shell = FakeShell()
    assert ipython.install(shell) is True
    assert shell.custom_exceptions == (CoveError,)
    assert ipython.install(shell) is True  # installing twice is harmless


def test_handler_prints_one_line_and_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    shell = FakeShell()
    ipython.install(shell)
    try:
        try:
            raise ValueError("web3 internals")
        except ValueError:
            raise SpecError("The spec uses a feature column 'weight' that the dataset does not have.") from None
    except SpecError as error:
        stb = shell.handler(shell, type(error), error, error.__traceback__, tb_offset=None)
    captured = capsys.readouterr()
    assert captured.err == "CoveError: The spec uses a feature column 'weight' that the dataset does not have.\n"
    assert captured.out == "" and stb == []
    assert "Traceback" not in captured.err and "web3" not in captured.err


def test_one_line_flattens_whitespace() -> None:
    assert ipython.one_line(PrivacyError("Not enough\nbudget  left.")) == "CoveError: Not enough budget left."


def test_another_handler_is_left_alone() -> None:
    shell = FakeShell()
    shell.set_custom_exc((KeyError,), lambda *a, **k: None)
    assert ipython.install(shell) is False
    assert shell.custom_exceptions == (KeyError,)


def test_nothing_to_install_outside_ipython(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipython, "_get_ipython", lambda: None)
    assert ipython.install() is False
    assert ipython.install(object()) is False  # not a shell


def test_a_cove_registers_the_handler_on_the_running_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    from exchange.sdk.cove import Cove, _Resources

    shell = FakeShell()
    monkeypatch.setattr(ipython, "_get_ipython", lambda: shell)
    client = SimpleNamespace(session=SimpleNamespace(account=None))
    cove = Cove._wrap(client, "http://127.0.0.1:1", "dev0", _Resources(), None)  # type: ignore[arg-type]
    assert shell.custom_exceptions == (CoveError,)
    cove.close()


def test_in_a_real_ipython_shell(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert ipython.install(shell)
        result = shell.run_cell(
            "from exchange.errors import PrivacyError\n"
            "raise PrivacyError('Dataset #1 has not enough privacy budget left.')"
        )
        captured = capsys.readouterr()
        assert isinstance(result.error_in_exec, PrivacyError)
        assert captured.err.strip() == "CoveError: Dataset #1 has not enough privacy budget left."
        assert "Traceback" not in captured.out + captured.err
        shell.run_cell("raise KeyError('other errors keep their traceback')")
        assert "Traceback" in "".join(capsys.readouterr())
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()
