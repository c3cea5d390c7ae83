"""Fixtures for training tests: the learnable tiny model and one shared SFT job."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.jobs import Finished, build_learnable_model, lookup_rows, run_training, write_job


@pytest.fixture(scope="session")
def learnable_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_learnable_model(tmp_path_factory.mktemp("learnable"))


@pytest.fixture(scope="session")
def sft_job(learnable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Finished]:
    """One SFT job on the lookup task, shared by the tests that inspect its result."""
    job = write_job(tmp_path_factory.mktemp("sft-job"), learnable_dir, lookup_rows())
    return job, run_training(job)
