import pytest
import torch

from conftest import build_for_steps

from main import main
from models.registry import DataStats, get_family
from train import checkpoint as ckpt_io
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from utils.sequences import load_sequences, read_sequences

SMALL = ["model.d_model=16", "model.g_layers=1", "model.d_layers=1", "model.n_heads=2",
         "model.noise_dim=4", "model.warmup_steps=2", "model.adv_every=2", "model.adv_weight=0.1", "train.eval_samples=40", "data.seq_len=20", "train.batch=16",
         "train.steps_per_epoch=3", "train.save_every=0", "train.sample_every=0"]


def small_cfg(genome, *sets):
    fam = get_family("stacked")
    return resolve("stacked", fam.Config, {"data": {"path": str(genome)}}, parse_set(SMALL + list(sets)))


def make(genome, *sets):
    return build_for_steps("stacked", small_cfg(genome, *sets), DataStats(seq_len=20, base_freq=(0.25,) * 4, gc=0.5), lr=1e-3)


def test_shapes_through_both_stages_and_spectral_norm(genome):
    fam, nets, ctx = make(genome)
    l1, z2 = nets["G"].coarse(5, 20, "cpu", ctx.generator)
    x = torch.randint(0, 4, (5, 20))
    l2 = nets["G"].refine(l1, z2, x)
    assert l1.shape == l2.shape == (5, 20, 4) and z2.shape == (5, 20, 4)
    assert nets["D1"](torch.softmax(l1, -1)).shape == (5,)
    for d in ("D1", "D2"):
        assert torch.nn.utils.parametrize.is_parametrized(nets[d].out, "weight")
        assert "spectral" in type(nets[d].out.parametrizations.weight[0]).__name__.lower()
    assert fam.sample(nets, 7, 20, generator=ctx.generator).shape == (7, 20)


@pytest.mark.parametrize("order,rel,rope", [(0, False, False), (3, False, False), (0, True, False), (0, False, True)])
def test_incremental_generation_matches_the_full_pass(genome, order, rel, rope):
    fam, nets, ctx = make(genome, f"model.ngram_order={order}", f"model.rel_pos={str(rel).lower()}",
                          f"model.rope={str(rope).lower()}")
    G = nets["G"]
    assert (G.ngram is None) == (order == 0)
    assert all((b.rel is not None) == rel and (b.rope is not None) == rope for b in G.stage2.blocks)
    with torch.no_grad():  # trained-looking tables (they start at zero), so those paths are really exercised
        if order:
            G.ngram.table.weight.normal_(0, 2.0, generator=ctx.generator)
        if rel:
            for b in G.stage2.blocks:
                b.rel.table.normal_(0, 2.0, generator=ctx.generator)
    x, l1, z2 = G.generate(6, 20, "cpu", ctx.generator, temperature=1e-4)  # ~greedy
    full = G.refine(l1, z2, x)
    top2 = full.topk(2, -1).values
    clear = (top2[..., 0] - top2[..., 1]) > 1e-3  # near-ties may flip with float summation order
    assert clear.float().mean() > 0.9
    assert torch.equal(full.argmax(-1)[clear], x[clear])
    # position t's logits do not depend on bases after t (causality)
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % 4
    assert torch.allclose(G.refine(l1, z2, x)[:, :11], G.refine(l1, z2, y)[:, :11], atol=1e-5)
    prompt = torch.tensor([0, 3, 2, 2])
    out = fam.sample(nets, 5, 20, generator=ctx.generator, prompt=prompt)
    assert (out[:, :4] == prompt).all()


def test_context_logits_rows_follow_the_previous_bases():
    from models.blocks import ContextLogits

    ng = ContextLogits(2)
    x = torch.tensor([[0, 3, 2, 1, 1]])
    # rows: (start, start), (start, A), (A, T), (T, G), (G, C) in base 5
    assert ng.index(x).tolist() == [[4 * 5 + 4, 4 * 5 + 0, 0 * 5 + 3, 3 * 5 + 2, 2 * 5 + 1]]
    with torch.no_grad():
        ng.table.weight.copy_(torch.randn(25, 4))
    full = ng(x)
    for t in range(5):
        assert torch.equal(ng.step(x, t), full[:, t])


def test_generator_step_changes_generator_only_and_d_step_discriminator_only(genome):
    fam, nets, ctx = make(genome, "model.warmup_steps=0", "model.adv_every=1")
    G0 = {k: v.clone() for k, v in nets["G"].state_dict().items()}
    D0 = {k: v.clone() for k, v in nets["D2"].state_dict().items()}
    # a D step alone: run train_step with the generator optimiser disabled
    step_g = ctx.optimizers.pop("g")
    ctx.optimizers["g"] = torch.optim.SGD(nets["G"].parameters(), lr=0.0)
    fam.train_step(nets, torch.randint(0, 4, (8, 20)), ctx)
    assert all(torch.equal(G0[k], v) for k, v in nets["G"].state_dict().items())
    assert any(not torch.equal(D0[k], v) for k, v in nets["D2"].state_dict().items())
    # a G step alone
    ctx.optimizers["g"] = step_g
    ctx.optimizers["d"] = torch.optim.SGD(list(nets["D1"].parameters()) + list(nets["D2"].parameters()), lr=0.0)
    D1 = {k: v.clone() for k, v in nets["D2"].state_dict().items() if "orig" in k or "bias" in k}
    fam.train_step(nets, torch.randint(0, 4, (8, 20)), ctx)
    assert any(not torch.equal(G0[k], v) for k, v in nets["G"].state_dict().items())
    assert all(torch.equal(D1[k], nets["D2"].state_dict()[k]) for k in D1)


def test_loss_falls_overfitting_a_tiny_set(genome):
    fam, nets, ctx = make(genome, "model.warmup_steps=1000")
    batch = torch.zeros(16, 20, dtype=torch.long)
    batch[:, 1::2] = 3  # two batches' worth of ATATAT...
    batch[8:, 1::2] = 2  # and AGAGAG...
    first = fam.train_step(nets, batch, ctx)["mle"]
    for _ in range(80):
        last = fam.train_step(nets, batch, ctx)["mle"]
    assert first > 1.0 and last < 0.3 * first
    samples = fam.sample(nets, 50, 20, generator=ctx.generator, temperature=0.5)
    assert (samples[:, 0::2] == 0).float().mean() > 0.9  # it writes A at every other base


def test_bagged_checkpoint_reloads_and_every_member_generates(genome, tmp_path):
    res = train(small_cfg(genome, "train.epochs=1", "train.bagging=true", "train.n_models=2",
                          f"train.checkpoint_dir={tmp_path}/ck", f"train.run_dir={tmp_path}/r"))
    ens, ck = load_ensemble(res.last_path)
    assert len(ens.members) == 2
    a = ens.sample(6, seed=1)
    b = res.ensemble.sample(6, seed=1)
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    for m in ens.members:
        assert ens.family.sample(m, 3, 20, generator=g).shape == (3, 20)
    w0 = ck["members"][0]["G.head1.weight"]
    assert not torch.equal(w0, ck["members"][1]["G.head1.weight"])


def test_resume_of_a_gradient_family_is_exact(genome, tmp_path):
    full = train(small_cfg(genome, "train.epochs=3", f"train.checkpoint_dir={tmp_path}/a",
                           f"train.run_dir={tmp_path}/ra"))
    part = train(small_cfg(genome, "train.epochs=2", f"train.checkpoint_dir={tmp_path}/b",
                           f"train.run_dir={tmp_path}/rb"))
    resumed = train(small_cfg(genome, "train.epochs=3"), resume=str(part.last_path))
    a, b = ckpt_io.load(full.last_path), ckpt_io.load(resumed.last_path)
    for k in a["members"][0]:
        assert torch.equal(a["members"][0][k], b["members"][0][k]), k


def test_same_seed_same_run(genome, tmp_path):
    r1 = train(small_cfg(genome, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/a", f"train.run_dir={tmp_path}/ra"))
    r2 = train(small_cfg(genome, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/b", f"train.run_dir={tmp_path}/rb"))
    a, b = ckpt_io.load(r1.last_path)["members"][0], ckpt_io.load(r2.last_path)["members"][0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_train_gen_stacked_tiny(genome, tmp_path):
    argv = ["--mode", "train", "--model", "stacked", "--data", str(genome), "--epochs", "2"]
    for s in SMALL:
        argv += ["--set", s]
    assert main(argv + ["--set", "train.save_every=2"]) == 0
    assert (tmp_path / "checkpoints/stacked_epoch2.pt").exists()
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/stacked_epoch2.pt", "--n", "12",
                 "--temperature", "0.8", "--data", str(genome)]) == 0
    assert read_sequences(tmp_path / "outputs/generated.fasta").shape == (12, 20)
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/stacked_epoch2.pt", "--seq_len", "50"]) == 2


def test_init_checkpoint_fine_tunes_from_weights(genome, tmp_path):
    src = train(small_cfg(genome, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/a", f"train.run_dir={tmp_path}/ra"))
    tuned = train(small_cfg(genome, "train.epochs=1", "train.lr_g=0", "train.lr_d=0", "train.seed=9",
                            f"train.checkpoint_dir={tmp_path}/b", f"train.run_dir={tmp_path}/rb"),
                  init_checkpoint=str(src.last_path))
    a, b = ckpt_io.load(src.last_path)["members"][0], ckpt_io.load(tuned.last_path)["members"][0]
    # lr 0: weights stay the source's; the n-gram refit buffer is redone by the closing fit
    g_keys = [k for k in a if k.startswith("G.") and not k.endswith(".refit")]
    assert g_keys and all(torch.equal(a[k], b[k]) for k in g_keys)
    import pytest
    from utils.errors import CheckpointError
    mk = train(resolve("markov", get_family("markov").Config, {"data": {"path": str(genome)}},
                       parse_set(["data.seq_len=20", "train.eval_samples=40", f"train.checkpoint_dir={tmp_path}/m",
                                  f"train.run_dir={tmp_path}/rm"])))
    with pytest.raises(CheckpointError, match="cannot initialise"):
        train(small_cfg(genome, "train.epochs=1", f"train.run_dir={tmp_path}/rx"), init_checkpoint=str(mk.last_path))


def test_curriculum_grows_the_training_length(genome, tmp_path):
    res = train(small_cfg(genome, "train.epochs=3", "train.curriculum=true", "train.curriculum_every=1",
                          "train.balance_weight=0.3", "train.sample_every=1", f"train.checkpoint_dir={tmp_path}/c",
                          f"train.run_dir={tmp_path}/rc"))
    assert [r["length"] for r in res.history] == [2, 4, 6]  # seq_len 20: start and step 2
    # each epoch's monitoring sample is drawn at the length that epoch trained on
    assert [read_sequences(tmp_path / f"rc/sequences/epoch{e}.fasta").shape[1] for e in (1, 2, 3)] == [2, 4, 6]
    assert res.ensemble.sample(4, 20, seed=0).shape == (4, 20)  # generation keeps the full length


def test_under_a_budget_the_last_epoch_to_start_trains_at_full_length(genome, tmp_path):
    """The engine projects each epoch's end from the share of --budget between the last two epoch
    starts; the epoch after which no other fits trains at seq_len, stage or not."""
    from train.engine import Run

    run = Run(small_cfg(genome, "train.epochs=3", "train.curriculum=true", "train.time_budget=600",
                        "train.sample_every=0", "train.save_every=0", f"train.checkpoint_dir={tmp_path}/c",
                        f"train.run_dir={tmp_path}/r"), save=False)
    marks = [0.0, 0.3, 0.55]  # the budget fraction spent while epoch e runs (e = epochs finished)
    run.budget_used = lambda: marks[min(len(run.history), 2)]
    res = run.run()
    # seq_len 20 in stages of 2 over 60% of the budget: 0.3 -> 10 bp, 0.55 -> 18 bp by stage alone;
    # 0.55 + 2 x 0.25 > 1, so the third epoch is the last to start and trains at 20
    assert [r["length"] for r in res.history] == [2, 10, 20]
    marks[2] = 0.45  # 0.45 + 2 x 0.15 < 1: another epoch would fit, the stage holds (14 bp)
    run2 = Run(small_cfg(genome, "train.epochs=3", "train.curriculum=true", "train.time_budget=600",
                         "train.sample_every=0", "train.save_every=0", f"train.checkpoint_dir={tmp_path}/c2",
                         f"train.run_dir={tmp_path}/r2"), save=False)
    run2.budget_used = lambda: marks[min(len(run2.history), 2)]
    assert [r["length"] for r in run2.run().history] == [2, 10, 14]


def test_a_resumed_run_projects_its_first_epoch_from_the_interrupted_runs_share(genome, tmp_path):
    """The checkpoint keeps the budget fraction at its epoch's start, so the first epoch after
    --resume is projected as the uninterrupted run would project it (before: share 0, its stage)."""
    from train.engine import Run

    def cfg(epochs):
        return small_cfg(genome, f"train.epochs={epochs}", "train.curriculum=true", "train.time_budget=600",
                         "train.sample_every=0", "train.save_every=0", f"train.checkpoint_dir={tmp_path}/c",
                         f"train.run_dir={tmp_path}/r")

    marks = [0.0, 0.3, 0.55]
    part = Run(cfg(2))
    part.budget_used = lambda: marks[min(len(part.history), 2)]
    part.run()
    assert ckpt_io.load(part.last_path)["epoch_start_used"] == 0.3
    resumed = Run(cfg(3), resume=str(part.last_path))
    resumed.budget_used = lambda: marks[min(len(resumed.history), 2)]
    # 0.55 + 2 x (0.55 - 0.3) > 1: the resumed third epoch is the last to start and trains at 20 bp
    assert [r["length"] for r in resumed.run().history] == [2, 10, 20]


def test_target_gc_alone_turns_the_gc_term_on(genome, tmp_path):
    plain = train(small_cfg(genome, "train.epochs=1", "train.balance_weight=0", f"train.run_dir={tmp_path}/r0",
                              f"train.checkpoint_dir={tmp_path}/c0"))
    steered = train(small_cfg(genome, "train.epochs=1", "train.balance_weight=0", "train.target_gc=0.3",
                              f"train.run_dir={tmp_path}/r1",
                              f"train.checkpoint_dir={tmp_path}/c1"))
    explicit = train(small_cfg(genome, "train.epochs=1", "train.balance_weight=0.2", "train.target_gc=0.3",
                               f"train.run_dir={tmp_path}/r2",
                               f"train.checkpoint_dir={tmp_path}/c2"))
    assert [r["balance_weight"] for r in (plain.history[0], steered.history[0], explicit.history[0])] == [0, 0.05, 0.2]


@pytest.mark.parametrize("loss", ["wgan-gp", "hinge"])
def test_gan_loss_options_update_generator_and_both_discriminators(genome, loss):
    fam, nets, ctx = make(genome, "model.warmup_steps=0", "model.adv_every=1", f"model.loss={loss}")
    before = {k: v.clone() for k, v in nets.state_dict().items()}
    out = fam.train_step(nets, torch.randint(0, 4, (8, 20)), ctx)
    moved = {k.split(".")[0] for k, v in nets.state_dict().items() if not torch.equal(before[k], v)}
    assert moved == {"G", "D1", "D2"} and {"d_loss", "g_adv", "mle", "d_auc"} <= set(out)


def test_discriminators_exist_only_for_adversarial_training(genome):
    fam, nets, _ = make(genome, "model.adv_weight=0")
    assert set(nets) == {"G"} and set(fam.optimizers(nets, small_cfg(genome))) == {"g"}


def test_closing_refit_matches_the_context_counts_and_resume_drops_it(genome):
    """With the network frozen, the refit n-gram table is the maximum-likelihood one: for every
    (previous bases, next base) pair the model's expected count on the fit windows equals the
    observed count, which is what lets a Markov chain match the k-mer spectrum."""
    fam, nets, ctx = make(genome, "model.ngram_order=2", "model.ngram_refit=300", "model.ngram_refit_prior=0")
    x = torch.from_numpy(load_sequences(genome, 20, val_fraction=0.2, seed=0).train)
    G = nets["G"]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    seed = ctx.cfg.train.seed
    fit = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:300]].long()
    rows = G.ngram.index(fit).reshape(-1)
    observed = torch.zeros(25, 4).index_add_(0, rows, torch.nn.functional.one_hot(fit.reshape(-1), 4).float())

    def expected():  # with the fit's own windows and noise, as finish draws them
        l1, z2 = G.coarse(fit.shape[0], 20, "cpu", torch.Generator().manual_seed(seed + 3))
        with torch.no_grad():
            p = torch.softmax(G.refine(l1, z2, fit), -1).reshape(-1, 4)
        return torch.zeros(25, 4).index_add_(0, rows, p)

    gap_before = (expected() - observed).abs().max()
    closing = fam.closing_fit(ctx.cfg)
    out = closing.fit(nets, x, None, ctx)  # ctx.val is None: no held-out check
    assert out["refit_nll_after"] < out["refit_nll_before"] and out["refit_kept"] == 1
    changed = [k for k, v in G.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ["ngram.refit"]  # the trained weights themselves are untouched
    # counts of up to a few hundred: off by many before, matched to a fraction of one after
    assert gap_before > 5 and (expected() - observed).abs().max() < 0.2
    closing.undo(nets)
    assert torch.equal(G.ngram.refit, torch.zeros(25, 4))


def test_closing_refit_is_dropped_when_it_fits_noise(genome):
    # a 5-base context table (3,125 rows) on 300 windows of 20 bases: held-out NLL rises (by more
    # than the fit windows' NLL falls), and the trained table is kept
    fam, nets, ctx = make(genome, "model.ngram_order=5", "model.ngram_refit=300", "model.ngram_refit_prior=0")
    data = load_sequences(genome, 20, val_fraction=0.2, seed=0)
    ctx.val = torch.from_numpy(data.val)
    out = fam.closing_fit(ctx.cfg).fit(nets, torch.from_numpy(data.train), None, ctx)
    rise = out["refit_val_nll_after"] - out["refit_val_nll_before"]
    assert rise > out["refit_nll_before"] - out["refit_nll_after"] > 0
    assert rise > ctx.cfg.model.ngram_refit_tolerance and out["refit_kept"] == 0
    assert torch.equal(nets["G"].ngram.refit, torch.zeros(3125, 4))