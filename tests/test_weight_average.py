"""train.ema: the moving average of the weights is what is validated, saved and sampled; the
training weights travel in the checkpoint, so an interrupted run resumes exactly."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from conftest import GUMBEL_TINY, train_tiny
from models.registry import get_family
from train import checkpoint as ckpt_io
from train.averaging import WeightAverage, ema_decay
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from utils.sequences import load_sequences

SMALL = ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.val_windows=200",
         "train.eval_samples=20", "data.seq_len=24", "train.batch=32", "train.steps_per_epoch=6",
         "train.save_every=0", "train.sample_every=0", "train.lr_g=0.01"]


def cfg_for(genome, tmp_path, tag, *sets):
    return resolve("masked", get_family("masked").Config, {"data": {"path": str(genome)}},
                   parse_set(SMALL + [f"train.checkpoint_dir={tmp_path}/ck_{tag}", f"train.run_dir={tmp_path}/run_{tag}",
                                      *sets]))


def test_the_average_follows_the_ramped_decay_and_copies_buffers():
    net = nn.Linear(3, 2)
    net.register_buffer("counts", torch.zeros(2))
    avg = WeightAverage(net, 0.5)
    history = []
    for t in range(6):
        with torch.no_grad():
            net.weight.fill_(float(t + 1))
            net.counts.fill_(10.0 * t)
        avg.update(net)
        history.append(t + 1.0)
    expect = history[0]  # the first update copies; then decay min(0.5, (1 + u) / (10 + u)) after u updates
    for u, w in enumerate(history[1:]):
        d = ema_decay(0.5, u)
        expect = d * expect + (1 - d) * w
    assert [ema_decay(0.5, u) for u in (0, 8, 100)] == pytest.approx([0.1, 0.5, 0.5])
    assert torch.allclose(avg.module.weight, torch.full_like(net.weight, expect))
    assert not torch.allclose(avg.module.weight, net.weight)
    assert torch.equal(avg.module.counts, net.counts)  # buffers are copied, not averaged
    assert not any(p.requires_grad for p in avg.module.parameters())
    with pytest.raises(ValueError):
        WeightAverage(net, 1.0)


def test_checkpoint_carries_the_average_and_generation_uses_it(genome, tmp_path):
    res = train(cfg_for(genome, tmp_path, "a", "train.epochs=2", "train.ema=0.9"))
    ck = ckpt_io.load(res.last_path)
    avg, raw = ck["members"][0], ck["train_members"][0]
    assert ck["ema_updates"] == [12]
    assert any(not torch.equal(avg[k], raw[k]) for k in avg)  # the average is not the last step's weights
    ens, _ = load_ensemble(res.last_path, "cpu")
    assert all(torch.equal(v, avg[k]) for k, v in ens.members[0].state_dict().items())
    # the held-out figures that picked the best checkpoint are the average's
    best, _ = load_ensemble(res.best_path, "cpu")
    data = load_sequences(genome, 24, val_fraction=0.2, seed=best.cfg.train.seed)
    ctx = SimpleNamespace(val=torch.from_numpy(data.val), val_labels=None, device=torch.device("cpu"), cfg=best.cfg)
    figures = get_family("masked").evaluate(best.members[0], ctx)
    assert figures["val_nll"] == pytest.approx(min(r["val_nll"] for r in res.history), rel=1e-6)


def test_resume_with_the_average_is_exact(genome, tmp_path):
    full = train(cfg_for(genome, tmp_path, "full", "train.epochs=3", "train.ema=0.9"))
    part = train(cfg_for(genome, tmp_path, "part", "train.epochs=2", "train.ema=0.9"))
    resumed = train(cfg_for(genome, tmp_path, "part", "train.epochs=3", "train.ema=0.9"), resume=str(part.last_path))
    a, b = ckpt_io.load(full.last_path), ckpt_io.load(resumed.last_path)
    assert a["ema_updates"] == b["ema_updates"] == [18]
    for key in ("members", "train_members"):
        for k, v in a[key][0].items():
            assert torch.equal(v, b[key][0][k]), (key, k)
    assert [r["val_nll"] for r in full.history] == pytest.approx([r["val_nll"] for r in resumed.history])


def test_without_ema_the_checkpoint_is_as_before(genome, tmp_path):
    res = train(cfg_for(genome, tmp_path, "b", "train.epochs=1", "train.ema=0"))
    ck = ckpt_io.load(res.last_path)
    assert "train_members" not in ck and "ema_updates" not in ck


def _gumbel(genome, tmp_path, tag, *sets, resume=None):
    return train_tiny("gumbel", genome, tmp_path / f"ck_{tag}", GUMBEL_TINY + ["model.d_filters=[4, 8]", "train.save_every=0",
                                                                            "train.lr_g=0.01", *sets],
                      resume=resume)


def test_gumbel_delivers_the_average_by_default_and_resumes_exactly(genome, tmp_path):
    """configs/gumbel.yaml averages the LSTM's weights (stop 40): its checkpoints carry the average as
    the members that generate and the training weights beside them, the held-out NLL that picked
    gumbel_best.pt is the average's, and an interrupted run resumes to the same weights."""
    cfg, full = _gumbel(genome, tmp_path, "full", "train.epochs=3")
    assert 0 < cfg.train.ema < 1  # the family's config, not a --set
    ck = ckpt_io.load(full.last_path)
    assert ck["ema_updates"] == [9]
    avg, raw = ck["members"][0], ck["train_members"][0]
    assert any(not torch.equal(avg[k], raw[k]) for k in avg if k.startswith("G."))
    best, _ = load_ensemble(full.best_path, "cpu")
    data = load_sequences(genome, 16, val_fraction=0.2, seed=best.cfg.train.seed)
    ctx = SimpleNamespace(val=torch.from_numpy(data.val), val_labels=None, device=torch.device("cpu"), cfg=best.cfg)
    figures = get_family("gumbel").evaluate(best.members[0], ctx)
    assert figures["val_nll"] == pytest.approx(min(r["val_nll"] for r in full.history), rel=1e-6)
    _, part = _gumbel(genome, tmp_path, "part", "train.epochs=2")
    _, resumed = _gumbel(genome, tmp_path, "part", "train.epochs=3", resume=str(part.last_path))
    b = ckpt_io.load(resumed.last_path)
    for key in ("members", "train_members"):
        for k, v in ck[key][0].items():
            assert torch.equal(v, b[key][0][k]), (key, k)
