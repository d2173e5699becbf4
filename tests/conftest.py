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
    # CLI runs write checkpoints/ and outputs/ relative to the working directory; cached encoders
    # (analysis.frechet) go to the test's own folder, never the user's ~/.cache
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DNAGAN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _seed():
    # weights initialised outside the engine (tests that build a family directly) are reproducible
    import torch

    torch.manual_seed(0)
    np.random.seed(0)


def build_for_steps(family: str, cfg, stats, lr: float, epoch: int = 0):
    """A family's nets, Adam optimisers per parameter group and a StepContext, for calling
    train_step directly (no engine)."""
    import torch

    from models.registry import get_family
    from train.engine import StepContext

    fam = get_family(family)
    nets = fam.build(cfg, stats)
    opts = {k: torch.optim.Adam(p, lr=lr) for k, (p, _) in fam.optimizers(nets, cfg).items()}
    plan = fam.plan(cfg)
    ctx = StepContext(epoch=epoch, length=stats.seq_len, balance_weight=0.0, temperature=1.0, target_gc=0.5,
                      ref_freq=(0.25,) * 4, device=torch.device("cpu"),
                      generator=torch.Generator().manual_seed(0), cfg=cfg, optimizers=opts,
                      phase=plan.phase(epoch).name, phase_start=plan.starts_phase(epoch))
    return fam, nets, ctx


# a gumbel small enough to train a few epochs of 3 steps in seconds
GUMBEL_TINY = ["model.hidden=16", "model.noise_dim=4", "model.d_hidden=16", "data.seq_len=16", "train.batch=8",
               "train.steps_per_epoch=3", "train.sample_every=0", "train.eval_samples=10", "train.seed=3"]


def train_tiny(family: str, genome, ck_dir: Path, sets, resume=None):
    """Train ``family`` on ``genome`` with ``--set``-style ``sets`` through the engine, checkpoints in
    ``ck_dir`` and the run folder beside it; returns (config, the engine's result)."""
    from models.registry import get_family
    from train.engine import train
    from utils.config import parse_set, resolve

    ck_dir = Path(ck_dir)
    cfg = resolve(family, get_family(family).Config,
                  {"data": {"path": str(genome)},
                   "train": {"checkpoint_dir": str(ck_dir), "run_dir": str(ck_dir.parent / f"run_{ck_dir.name}")}},
                  parse_set(list(sets)))
    return cfg, train(cfg, resume=resume)
