import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def random_dna(n: int, seed: int = 0, gc: float = 0.5) -> str:
    rng = np.random.default_rng(seed)
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(np.array(list("ACGT"))[rng.choice(4, n, p=p)])


@pytest.fixture
def genome(tmp_path):
    """A 6 kb two-record FASTA with some structure (a repeated motif) so models can learn."""
    rng = np.random.default_rng(1)
    motif = "ATGGCGTTAGCC"
    parts = []
    for _ in range(500):
        parts.append(motif if rng.random() < 0.5 else random_dna(12, int(rng.integers(1e9))))
    seq = "".join(parts)
    path = tmp_path / "genome.fasta"
    path.write_text(f">rec1 test\n{seq[:3000]}\n>rec2\n{seq[3000:]}\n")
    return path


@pytest.fixture(autouse=True)
def _chdir(tmp_path, monkeypatch):
    # CLI runs write checkpoints/ and outputs/ relative to the working directory.
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _seed():
    # weights initialised outside the engine (tests that build a family directly) are reproducible
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
