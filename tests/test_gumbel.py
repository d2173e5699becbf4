import numpy as np
import pytest
import torch

from conftest import build_for_steps

from analysis import metrics as M
from main import main
from models.blocks import gumbel_softmax
from models.registry import DataStats, get_family
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from utils.errors import ConfigError
from utils.sequences import read_sequences
from conftest import random_dna

SMALL = ["model.adv_weight=0.1", "model.hidden=32", "model.noise_dim=8", "model.d_filters=[8, 16, 16]", "model.d_hidden=16",
         "model.adv_every=2", "model.warmup_steps=1", "train.eval_samples=40", "data.seq_len=20",
         "train.batch=16", "train.steps_per_epoch=4", "train.save_every=0", "train.sample_every=0"]
STATS = DataStats(seq_len=20, base_freq=(0.25,) * 4, gc=0.5, gc_percentiles=tuple(np.linspace(0.2, 0.8, 101)))


def small_cfg(genome, *sets):
    fam = get_family("gumbel")
    return resolve("gumbel", fam.Config, {"data": {"path": str(genome)}}, parse_set(SMALL + list(sets)))


def make(genome, *sets, epoch=0):
    return build_for_steps("gumbel", small_cfg(genome, *sets), STATS, lr=3e-3, epoch=epoch)


def test_straight_through_gumbel_is_one_hot_forward_and_carries_gradient():
    logits = torch.randn(6, 20, 4, requires_grad=True)
    y = gumbel_softmax(logits, tau=0.7, hard=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y.detach().sum(-1), torch.ones(6, 20))
    assert set(y.detach().unique().tolist()) == {0.0, 1.0}
    (y * torch.randn(6, 20, 4)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    soft = gumbel_softmax(logits, tau=0.7, hard=False)
    assert torch.allclose(soft.sum(-1), torch.ones(6, 20)) and (soft < 1).all()


def test_free_run_feeds_back_samples_and_gradient_reaches_every_generator_weight(genome):
    fam, nets, _ = make(genome)
    G = nets["G"]
    fake, logits = G.free_run(5, 20, G.noise(5, "cpu", None), tau=1.0, hard=True)
    assert fake.shape == logits.shape == (5, 20, 4)
    assert torch.equal(fake.detach().sum(-1), torch.ones(5, 20))
    nets["D"](fake).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())


@pytest.mark.parametrize("disc", ["cnn", "lstm"])
def test_both_discriminators_take_soft_input(genome, disc):
    fam, nets, _ = make(genome, f"model.disc={disc}")
    soft = torch.softmax(torch.randn(7, 20, 4), -1)
    assert nets["D"](soft).shape == (7,)
    assert nets["D"](soft[:, :13]).shape == (7,)  # shorter (curriculum) lengths too
    assert torch.nn.utils.parametrize.is_parametrized(nets["D"].head.out, "weight")
    with pytest.raises(ConfigError, match="model.disc must be cnn or lstm, got 'gru'"):
        small_cfg(genome, "model.disc=gru")


def test_mle_warmup_leaves_generator_to_mle_and_d_still_trains(genome):
    fam, nets, ctx = make(genome, "model.adv_every=1", "model.warmup_steps=5", epoch=0)
    out = fam.train_step(nets, torch.randint(0, 4, (8, 20)), ctx)
    assert "d_acc" in out and "g_adv" not in out and "mle" in out
    ctx.step = 5  # the warm-up is counted in generator steps
    out = fam.train_step(nets, torch.randint(0, 4, (8, 20)), ctx)
    assert {"d_acc", "g_adv", "mle", "d_loss"} <= set(out)


@pytest.mark.parametrize("sets", [["model.loss=wgan-gp", "model.straight_through=false"],
                                  ["model.loss=hinge", "model.disc=lstm"]])
def test_every_gan_loss_option_updates_both_networks(genome, sets):
    fam, nets, ctx = make(genome, "model.adv_every=1", "model.warmup_steps=0", "model.mle_weight=0", *sets)
    before = {k: v.clone() for k, v in nets.state_dict().items()}
    out = fam.train_step(nets, torch.randint(0, 4, (8, 20)), ctx)
    moved = {k.split(".")[0] for k, v in nets.state_dict().items() if not torch.equal(before[k], v)}
    assert moved == {"G", "D"} and "mle" not in out
    # the generator's loss is the adversarial term alone (mle_weight 0): -mean D(fake) for these losses
    assert out["g_loss"] == pytest.approx(ctx.cfg.model.adv_weight * out["g_adv"])


def test_mle_loss_falls_when_overfitting_two_batches(genome):
    fam, nets, ctx = make(genome, "model.adv_weight=0")
    batch = torch.zeros(16, 20, dtype=torch.long)
    batch[:, 1::2] = 3
    batch[8:, 1::2] = 2
    first = fam.train_step(nets, batch, ctx)["mle"]
    for _ in range(200):
        last = fam.train_step(nets, batch, ctx)["mle"]
    assert first > 1.0 and last < 0.3 * first
    s = fam.sample(nets, 50, 20, generator=ctx.generator, temperature=0.5)
    assert (s[:, 0::2] == 0).float().mean() > 0.9


def test_temperature_anneals_on_its_schedule(genome, tmp_path):
    res = train(small_cfg(genome, "train.epochs=3", "train.anneal_temperature=true", "train.temperature=1.0",
                          "train.temperature_decay=0.5", "train.temperature_min=0.3",
                          f"train.checkpoint_dir={tmp_path}/c", f"train.run_dir={tmp_path}/r"))
    assert [r["temperature"] for r in res.history] == [1.0, 0.5, 0.3]
    assert (tmp_path / "r/training_dynamics.png").stat().st_size > 10_000
    for k in ("d_acc", "d_loss", "g_loss", "morans_i", "diversity", "sample_gc"):
        assert k in res.history[-1], k


def test_gc_conditional_generator_follows_its_label(tmp_path):
    # windows of 20 bp from alternating AT-rich and GC-rich stretches
    parts = [random_dna(200, seed=i, gc=0.2 if i % 2 else 0.8) for i in range(40)]
    path = tmp_path / "mixed.fasta"
    path.write_text(">mixed\n" + "".join(parts) + "\n")
    res = train(small_cfg(path, "model.condition=gc", "model.gc_bins=2", "model.adv_weight=0",
                          "train.epochs=4", "train.steps_per_epoch=40", "train.lr_g=0.01",
                          f"train.checkpoint_dir={tmp_path}/c", f"train.run_dir={tmp_path}/r"))
    ens, _ = load_ensemble(res.last_path)
    lo = M.gc_content(ens.sample(200, seed=1, gc=0.2).numpy()).mean()
    hi = M.gc_content(ens.sample(200, seed=1, gc=0.8).numpy()).mean()
    assert hi - lo > 0.3, (lo, hi)
    assert torch.equal(ens.sample(10, seed=3, gc=0.8), res.ensemble.sample(10, seed=3, gc=0.8))


def test_a_gc_conditional_checkpoint_of_the_version_before_labels_still_loads(genome, tmp_path):
    """Before stop 17 the bin edges were the "bins" module's and there were no label frequencies:
    such a checkpoint loads and samples exactly as the model it was written from."""
    from train import checkpoint as ckpt_io

    res = train(small_cfg(genome, "model.condition=gc", "train.epochs=1", "train.steps_per_epoch=2",
                          f"train.checkpoint_dir={tmp_path}/c", f"train.run_dir={tmp_path}/r"))
    ck = torch.load(res.last_path, weights_only=True)
    for sd in ck["members"]:
        sd["bins.edges"] = sd.pop("classes.edges")
        del sd["classes.label_freq"]
    ckpt_io.save_all([tmp_path / "old.pt"], ck)
    old, _ = load_ensemble(tmp_path / "old.pt", device="cpu")
    assert torch.equal(old.sample(20, seed=2, gc=0.6), res.ensemble.sample(20, seed=2, gc=0.6))


def test_cli_train_gen_gumbel_tiny(genome, tmp_path):
    argv = ["--mode", "train", "--model", "gumbel", "--data", str(genome), "--epochs", "2", "--disc", "lstm"]
    for s in SMALL:
        argv += ["--set", s]
    assert main(argv + ["--set", "train.save_every=2"]) == 0
    assert (tmp_path / "checkpoints/gumbel_epoch2.pt").exists()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/gumbel_epoch2.pt", "--n", "9",
                 "--prompt", "ACG", "--data", str(genome)]) == 0
    seqs = read_sequences(tmp_path / "outputs/generated.fasta")
    assert seqs.shape == (9, 20) and (seqs[:, :3] == [0, 1, 2]).all()
    # --gc on an unconditional model, and a family flag on the wrong family: one line, exit 2
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/gumbel_epoch2.pt", "--gc", "0.5"]) == 2
    assert main(["--mode", "train", "--model", "markov", "--disc", "cnn", "--data", str(genome)]) == 2


def test_ngram_table_and_its_closing_refit(genome, tmp_path):
    """With model.ngram_order the generator's logits get a context table; the closing refit (the
    LSTM frozen) lowers the training NLL, lands in <model>_best.pt, and sampling uses it."""
    from models.registry import get_family
    from train import checkpoint as ckpt_io
    from train.engine import load_ensemble, train
    from utils.config import parse_set, resolve

    sets = ["data.seq_len=20", "train.batch=16", "train.steps_per_epoch=4", "train.eval_samples=20",
            "train.epochs=2", "model.hidden=16", "model.noise_dim=4", "model.d_hidden=16", "model.d_filters=[8]",
            "model.ngram_order=3", "model.ngram_refit=400", "model.ngram_refit_tolerance=10", "model.ngram_min_bases=0",
            f"train.checkpoint_dir={tmp_path}/ck", f"train.run_dir={tmp_path}/r"]
    res = train(resolve("gumbel", get_family("gumbel").Config, {"data": {"path": str(genome)}}, parse_set(sets)))
    last = res.history[-1]
    assert last["refit_kept"] == 1.0 and last["refit_nll_after"] < last["refit_nll_before"] - 0.01
    best = ckpt_io.load(res.best_path)
    assert best["members"][0]["G.ngram.refit"].abs().sum() > 0
    ens, _ = load_ensemble(res.best_path)
    x = ens.sample(200, seed=0)
    assert x.shape == (200, 20)
    ens.members[0]["G"].ngram.refit.zero_()  # without the refit the samples change
    assert not torch.equal(x, ens.sample(200, seed=0))
