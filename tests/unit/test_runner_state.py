"""The runner's SQLite job state only moves forward and survives reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from compute_to_data.state import RunnerState, Stage


def test_jobs_move_forward_only(tmp_path: Path) -> None:
    state = RunnerState(tmp_path / "runner.sqlite")
    assert state.see(7, 1) is True
    assert state.see(7, 1) is False  # a replayed event does not reset the job
    state.advance(7, Stage.ACCEPTED)
    with pytest.raises(ValueError, match="cannot move from accepted to trained"):
        state.advance(7, Stage.TRAINED)  # rows are read in TRAINING: never skipped
    state.advance(7, Stage.TRAINING)
    state.advance(7, Stage.TRAINED, weights_cid="bafk-w", provenance_cid="bafk-p", outputs="{}")
    with pytest.raises(ValueError, match="cannot move from trained to accepted"):
        state.advance(7, Stage.ACCEPTED)
    state.advance(7, Stage.COMPLETED)
    with pytest.raises(ValueError):
        state.advance(7, Stage.FAILED)  # a completed job is never refunded


def test_state_survives_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "runner.sqlite"
    first = RunnerState(path)
    first.see(1, 3)
    first.see(2, 3)
    first.advance(1, Stage.ACCEPTED)
    reopened = RunnerState(path)
    assert [r.job_id for r in reopened.in_stage(Stage.ACCEPTED)] == [1]
    assert [r.job_id for r in reopened.in_stage(Stage.SEEN)] == [2]


def test_unknown_job_cannot_advance(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="job 9 cannot move from None"):
        RunnerState(tmp_path / "r.sqlite").advance(9, Stage.ACCEPTED)
