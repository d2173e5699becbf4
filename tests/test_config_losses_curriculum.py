import dataclasses

import pytest
import torch

from models.markov import MarkovConfig
from train.curriculum import Curriculum
from train.losses import balance_penalty, balanced_loss, d_loss, g_loss, gradient_penalty
from utils.config import parse_set, resolve
from utils.errors import ConfigError


def test_config_layers_override_in_order():
    cfg = resolve("markov", MarkovConfig, {"train": {"epochs": 7}},
                  parse_set(["train.epochs=9", "model.order=3", "train.betas=[0.9, 0.99]"]))
    assert cfg.train.epochs == 9 and cfg.model.order == 3 and cfg.train.betas == (0.9, 0.99)
    assert cfg.model.alpha == 1.0  # from configs/markov.yaml / defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # frozen


def test_config_unknown_key_and_wrong_type():
    with pytest.raises(ConfigError, match="unknown config key model.hidden"):
        resolve("markov", MarkovConfig, parse_set(["model.hidden=3"]))
    with pytest.raises(ConfigError, match="train.epochs: expected an integer"):
        resolve("markov", MarkovConfig, parse_set(["train.epochs=many"]))
    with pytest.raises(ConfigError, match="unknown config section"):
        resolve("markov", MarkovConfig, {"optim": {"lr": 1}})
    with pytest.raises(ConfigError, match="model.order must be an integer from 0 to 10"):
        resolve("markov", MarkovConfig, parse_set(["model.order=99"]))


def test_balance_penalty_zero_at_target_and_grows():
    ref = torch.tensor([0.3, 0.2, 0.2, 0.3])
    at_target = ref.expand(10, 4)
    assert balance_penalty(at_target, 0.4, ref).item() == pytest.approx(0.0, abs=1e-7)
    prev = 0.0
    for shift in (0.05, 0.1, 0.2):
        p = torch.tensor([0.3 + shift, 0.2 - shift / 2, 0.2 - shift / 2, 0.3]).expand(10, 4)
        pen = balance_penalty(p, 0.4, ref).item()
        assert pen > prev
        prev = pen
    all_a = torch.tensor([1.0, 0, 0, 0]).expand(5, 4)
    assert balance_penalty(all_a, 0.4).item() == pytest.approx(0.4 + 1.0)


def test_balanced_loss_mixes_ce_and_penalty():
    logits = torch.randn(2, 5, 4)
    tgt = torch.randint(0, 4, (2, 5))
    ce = balanced_loss(logits, tgt, weight=0.0, target_gc=0.5)
    mix = balanced_loss(logits, tgt, weight=0.3, target_gc=0.5)
    pen = balance_penalty(torch.softmax(logits, -1), 0.5)
    assert mix.item() == pytest.approx(0.7 * ce.item() + 0.3 * pen.item(), rel=1e-5)


def test_gan_losses_signs():
    good = torch.full((8,), 5.0)
    bad = torch.full((8,), -5.0)
    for kind in ("bce", "wgan-gp", "hinge"):
        assert d_loss(good, bad, kind) < d_loss(bad, good, kind)
        assert g_loss(good, kind) < g_loss(bad, kind)
    critic = torch.nn.Linear(3, 1)
    gp = gradient_penalty(critic, torch.randn(4, 3), torch.randn(4, 3))
    w = critic.weight.detach().norm()
    assert gp.item() == pytest.approx(((w - 1) ** 2).item(), rel=1e-4)


def test_curriculum_schedule_values():
    c = Curriculum(seq_len=500, weight0=0.5, temperature0=1.0, temperature_min=0.5, temperature_decay=0.9)
    assert [c.length(e) for e in (0, 4, 5, 10, 44, 45, 100)] == [50, 50, 100, 150, 450, 500, 500]
    assert [round(c.balance_weight(e), 3) for e in (0, 9, 10, 20, 79, 200)] == [0.5, 0.5, 0.45, 0.4, 0.15, 0.1]
    assert c.temperature(0) == 1.0 and c.temperature(1) == pytest.approx(0.9) and c.temperature(100) == 0.5
    short = Curriculum(seq_len=70)
    assert [short.length(e) for e in (0, 5, 45, 60)] == [7, 14, 70, 70]


def test_under_a_budget_the_length_follows_the_clock_and_reaches_seq_len():
    """With --budget the stages spread over the first 60% of it, whatever the epoch: a 900 s run
    at 500 bp that manages 13 epochs still trains at 500 bp for its last 40%."""
    c = Curriculum(seq_len=500)  # 50 bp, then nine 50 bp stages
    assert [c.length(13, used) for used in (0.0, 0.1, 0.3, 0.59, 0.6, 0.9)] == [50, 100, 250, 450, 500, 500]
    assert Curriculum(seq_len=500, share=0.3).length(0, 0.3) == 500
    assert [Curriculum(seq_len=70).length(0, u) for u in (0.0, 0.35, 1.0)] == [7, 42, 70]


def test_under_a_budget_the_epoch_projected_last_trains_at_full_length():
    """An epoch starting within two of the previous epoch's budget shares of the end is the last to
    start: it trains at seq_len whatever its stage (masked at 500 bp, --budget 900, ended at 450 bp)."""
    c = Curriculum(seq_len=500)
    assert c.length(3, 0.55) == 450  # the stage alone
    assert c.length(3, 0.55, last=0.2) == 450  # 0.55 + 0.4 < 1: another epoch fits after it
    assert c.length(3, 0.55, last=0.25) == 500  # 0.55 + 0.5 > 1: the last
    assert c.length(1, 0.1, last=0.5) == 500  # two long epochs: the second is at full length
    assert c.length(15, None, last=0.9) == 200  # without a budget the epoch count rules
