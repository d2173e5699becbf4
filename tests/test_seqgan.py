"""SeqGAN: policy gradient, rollout EMA, batched rewards (shape, range, memory order), D eval mode
while scoring, device placement, adversarial weights saved, phases and flags, continuous data path."""
import json
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, build_for_steps
from models.registry import DataStats
from models.seqgan import Discriminator, Policy, SeqGANConfig, ema_update, rollout_rewards
from utils.config import resolve

sys.path.insert(0, str(ROOT / "bench"))
from rollout_speed import features_unfolded, loop_rewards  # noqa: E402

KINDS = ["categorical", "gaussian"]


def tiny_cfg(**model):
    base = dict(hidden=8, emb=8, rollout_num=3, d_emb=4, d_filter_sizes=(2, 3), d_num_filters=(4, 4),
                pre_epochs=1, dis_pre_epochs=1, total_batch=2, rounds_per_epoch=1, d_steps=1)
    base.update(model)
    return resolve("seqgan", SeqGANConfig, {"model": base, "train": {"batch": 8}})


def stats(kind, L=12):
    return DataStats(seq_len=L, base_freq=(0.25,) * 4, gc=0.5, kind="signal" if kind == "gaussian" else "dna")


def batch_of(kind, B=8, L=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == "categorical":
        return torch.randint(0, 4, (B, L), generator=g)
    return torch.randn(B, L, generator=g)


def adversarial_ctx(kind, cfg, L=12):
    # after one MLE and one D-pretraining epoch: the adversarial phase
    fam, nets, ctx = build_for_steps("seqgan", cfg, stats(kind, L), lr=1e-2, epoch=2)
    ctx.train = batch_of(kind, 32, L, seed=5)
    assert ctx.phase == "adversarial" and ctx.phase_start
    return fam, nets, ctx


@pytest.mark.parametrize("kind", KINDS)
def test_policy_gradient_reaches_every_generator_parameter(kind):
    cfg = tiny_cfg()
    fam, nets, ctx = adversarial_ctx(kind, cfg)
    out = fam.pg_step(nets, ctx, 8, 12)
    assert 0 <= out["reward"] <= 1 and 0 <= out["reward_final"] <= 1
    for name, p in nets["G"].named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KINDS)
def test_rollout_moves_only_by_ema(kind):
    cfg = tiny_cfg()
    fam, nets, ctx = adversarial_ctx(kind, cfg)
    G, ro = nets["G"], nets["rollout"]
    assert not any(p.requires_grad for p in ro.parameters())
    grouped = {id(p) for ps, _ in fam.optimizers(nets, cfg).values() for p in ps}
    assert not any(id(p) in grouped for p in ro.parameters())
    # perturb G so that rollout and G differ, then one adversarial round
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = [p.clone() for p in ro.parameters()]
    fam.train_step(nets, batch_of(kind), ctx)
    for b, pr, pg in zip(before, ro.parameters(), G.parameters()):
        torch.testing.assert_close(pr, 0.8 * b + 0.2 * pg)
    # the rollout is a real copy (not G itself) and tracks it: repeated EMA converges to G
    for _ in range(60):
        ema_update(ro, G, 0.8)
    for pr, pg in zip(ro.parameters(), G.parameters()):
        assert pr is not pg
        torch.testing.assert_close(pr, pg, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_rewards_shape_and_range(kind):
    c = SeqGANConfig(hidden=8, emb=8, d_emb=4, d_filter_sizes=(2, 3), d_num_filters=(4, 4))
    G, D = Policy(c, kind), Discriminator(c, kind, 12)
    x = G.generate(5, 12, torch.Generator().manual_seed(0))
    r = rollout_rewards(G, D, x, 4, generator=torch.Generator().manual_seed(1))
    assert r.shape == (5, 12)
    assert (r >= 0).all() and (r <= 1).all()


def test_rewards_keep_sequence_and_step_order():
    """With a deterministic rollout (every continuation is all A) the batched rewards must equal,
    entry by entry, the loop reference: D of x[b, :t] + A...A. A reshape in the wrong memory order
    would scramble them across sequences and steps."""
    c = SeqGANConfig(hidden=8, emb=8, d_emb=4, d_filter_sizes=(2, 3, 5), d_num_filters=(6, 6, 6))
    G, D = Policy(c, "categorical"), Discriminator(c, "categorical", 10)
    with torch.no_grad():
        G.head.weight.zero_()
        G.head.bias.copy_(torch.tensor([60.0, 0.0, 0.0, 0.0]))
    x = torch.randint(1, 4, (6, 10), generator=torch.Generator().manual_seed(3))  # no A in x
    batched = rollout_rewards(G, D, x, 4, generator=torch.Generator().manual_seed(1), d_batch=7)
    loop = loop_rewards(G, D, x, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(batched, loop, atol=1e-5, rtol=1e-4)
    assert batched.std(0).min() > 1e-5 and batched.std(1).min() > 1e-5  # varies along both axes
    # and directly: reward[b, t-1] = D(x[b, :t] + A...)
    D.eval()
    b, t = 4, 6
    y = x[b : b + 1].clone()
    y[:, t:] = 0
    with torch.no_grad():
        assert abs(float(torch.sigmoid(D(y))) - float(batched[b, t - 1])) < 1e-5


@pytest.mark.parametrize("every", [3, 4, 9, 12])
def test_rewards_with_a_prefix_stride(every):
    """rollout_every k: only prefixes k, 2k, ... < L are rolled out; token t gets the reward of the
    first rolled-out prefix that holds it (the whole sequence's score past the last one). With the
    deterministic all-A rollout that is the every-prefix reward of that prefix, entry by entry."""
    from models.seqgan import rollout_prefixes

    c = SeqGANConfig(hidden=8, emb=8, d_emb=4, d_filter_sizes=(2, 3, 5), d_num_filters=(6, 6, 6))
    G, D = Policy(c, "categorical"), Discriminator(c, "categorical", 10)
    with torch.no_grad():
        G.head.weight.zero_()
        G.head.bias.copy_(torch.tensor([60.0, 0.0, 0.0, 0.0]))
    x = torch.randint(1, 4, (6, 10), generator=torch.Generator().manual_seed(3))
    dense = rollout_rewards(G, D, x, 2, generator=torch.Generator().manual_seed(1))
    strided = rollout_rewards(G, D, x, 2, generator=torch.Generator().manual_seed(1), every=every)
    P = rollout_prefixes(10, every)
    assert P == list(range(every, 10, every))
    for t in range(10):
        p = next((q for q in P if q >= t + 1), 10)  # 10: the whole sequence, its own score
        torch.testing.assert_close(strided[:, t], dense[:, p - 1], atol=1e-5, rtol=1e-4)
    assert rollout_prefixes(70, 0) == list(range(1, 70)) and rollout_prefixes(500, 0) == list(range(8, 500, 8))


def test_folded_discriminator_matches_reference_path():
    c = SeqGANConfig(d_emb=8, d_filter_sizes=(2, 5), d_num_filters=(7, 3))
    D = Discriminator(c, "categorical", 20)
    x = torch.randint(0, 4, (9, 20))
    torch.testing.assert_close(D.features(x), features_unfolded(D, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_discriminator_scores_rewards_in_eval_mode(kind):
    cfg = tiny_cfg()
    fam, nets, ctx = adversarial_ctx(kind, cfg)
    D = nets["D"]
    modes = []
    # D's output layer runs in every path that scores (forward, and the prefix-shared rollout scoring)
    h = D.out.register_forward_pre_hook(lambda m, inp: modes.append(D.training))
    rollout_rewards(nets["rollout"], D, nets["G"].generate(4, 12, None), 3)
    h.remove()
    assert modes and not any(modes)
    assert D.training  # restored for its own updates
    # within a full round the discriminator is in training mode only for its own update
    modes.clear()
    h = D.out.register_forward_pre_hook(lambda m, inp: modes.append(D.training))
    fam.train_step(nets, batch_of(kind), ctx)
    h.remove()
    # scoring (every prefix's completions, then the sampled batch) in eval mode; then one D step:
    # real + fake forwards in training mode
    assert len(modes) > 2 and not any(modes[:-2]) and modes[-2:] == [True, True]


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_generator_rollout_and_discriminator_share_a_device(kind, device):
    cfg = tiny_cfg()
    fam, nets, ctx = adversarial_ctx(kind, cfg)
    dev = torch.device(device)
    nets.to(dev)
    ctx.device = dev
    ctx.generator = torch.Generator(device=dev).manual_seed(0)
    for name in ("G", "rollout", "D"):
        assert {p.device.type for p in nets[name].parameters()} == {dev.type}, name
    x = nets["G"].generate(4, 12, ctx.generator)
    assert x.device.type == dev.type
    r = rollout_rewards(nets["rollout"], nets["D"], x, 2, generator=ctx.generator)
    assert r.device.type == dev.type
    out = fam.train_step(nets, batch_of(kind).to(dev), ctx)
    assert {"pg_loss", "reward", "d_loss", "d_auc"} <= set(out)
    ema_update(nets["rollout"], nets["G"], 0.8)
    assert {p.device.type for p in nets["rollout"].parameters()} == {dev.type}


@pytest.mark.parametrize("kind", KINDS)
def test_mle_pretraining_overfits_two_batches(kind):
    cfg = tiny_cfg(hidden=32, emb=16)
    fam, nets, ctx = build_for_steps("seqgan", cfg, stats(kind), lr=1e-2, epoch=0)
    assert ctx.phase == "gen_pretrain"
    batches = [batch_of(kind, seed=s) for s in (1, 2)]
    with torch.no_grad():
        first = [float(nets["G"].mle_loss(b)) for b in batches]
    for i in range(150):
        fam.train_step(nets, batches[i % 2], ctx)
    with torch.no_grad():
        last = [float(nets["G"].mle_loss(b)) for b in batches]
    assert sum(last) < 0.8 * sum(first)


def test_phase_plan_and_skip_flags():
    from models.registry import get_family

    fam = get_family("seqgan")
    plan = fam.plan(tiny_cfg(pre_epochs=3, dis_pre_epochs=2, total_batch=5, rounds_per_epoch=2))
    assert plan.epochs == 8
    assert [plan.phase(e).name for e in range(8)] == ["gen_pretrain"] * 3 + ["dis_pretrain"] * 2 + ["adversarial"] * 3
    assert [plan.steps(e, 50) for e in range(8)] == [50] * 5 + [2, 2, 1]  # 5 rounds in all
    assert [plan.starts_phase(e) for e in range(8)] == [True, False, False, True, False, True, False, False]
    assert plan.phase(20).name == "adversarial"  # an --epochs longer than the plan goes on adversarially
    skip = fam.plan(tiny_cfg(skip_gen_pretrain=True, skip_dis_pretrain=True, total_batch=5, rounds_per_epoch=2))
    assert [(p.name, p.epochs, p.steps) for p in skip.phases] == [("adversarial", 2, 2), ("adversarial", 1, 1)]


def test_adversarial_weights_are_saved(genome, tmp_path):
    """The last checkpoint holds the adversarially trained generator (public code has saved the
    pretrained one), and it differs from the generator before the adversarial phase."""
    from train.engine import load_ensemble, train

    cfg = resolve("seqgan", SeqGANConfig, {
        "data": {"path": str(genome), "seq_len": 16},
        "model": {"hidden": 16, "emb": 8, "rollout_num": 2, "d_emb": 4, "d_filter_sizes": [2, 3],
                  "d_num_filters": [4, 4], "pre_epochs": 1, "dis_pre_epochs": 1, "total_batch": 2,
                  "rounds_per_epoch": 1},
        "train": {"steps_per_epoch": 3, "save_every": 1, "eval_samples": 20, "checkpoint_dir": str(tmp_path / "ck"),
                  "run_dir": str(tmp_path / "run"), "lr_g": 0.05}})
    res = train(cfg)
    assert res.epochs_done == 4 and "pg_loss" in res.history[-1]
    pre, _ = load_ensemble(tmp_path / "ck" / "seqgan_epoch2.pt", device="cpu")  # before adversarial rounds
    last, _ = load_ensemble(tmp_path / "ck" / "seqgan_last.pt", device="cpu")
    trained = res.ensemble.members[0]
    for k, v in trained.state_dict().items():
        torch.testing.assert_close(last.members[0].state_dict()[k], v)
    g_pre, g_last = pre.members[0]["G"].state_dict(), last.members[0]["G"].state_dict()
    assert any(not torch.equal(g_pre[k], g_last[k]) for k in g_pre)
    # and reloads to identical samples
    torch.testing.assert_close(last.sample(10, 16, seed=3), res.ensemble.sample(10, 16, seed=3))


def test_pg_lr_zero_is_the_adversarial_phase_without_its_reward(genome, tmp_path):
    """model.pg_lr 0 (the ablation of an adversarial gain): the rounds still roll out, score and train
    D, but G moves only by the interleaved MLE steps, here none. The weight average (seqgan's default
    since stop 41) is off: it would go on moving the delivered G toward the training G."""
    from train.engine import load_ensemble, train

    cfg = resolve("seqgan", SeqGANConfig, {
        "data": {"path": str(genome), "seq_len": 16},
        "model": {"hidden": 16, "emb": 8, "rollout_num": 2, "d_emb": 4, "d_filter_sizes": [2, 3],
                  "d_num_filters": [4, 4], "pre_epochs": 1, "dis_pre_epochs": 1, "total_batch": 2,
                  "rounds_per_epoch": 1, "pg_lr": 0.0, "mle_steps": 0, "ngram_order": 0},
        "train": {"steps_per_epoch": 3, "save_every": 1, "eval_samples": 20, "checkpoint_dir": str(tmp_path / "ck"),
                  "run_dir": str(tmp_path / "run"), "lr_g": 0.05, "ema": 0.0}})
    res = train(cfg)
    assert res.epochs_done == 4 and "pg_loss" in res.history[-1]
    pre, _ = load_ensemble(tmp_path / "ck" / "seqgan_epoch2.pt", device="cpu")
    last, _ = load_ensemble(tmp_path / "ck" / "seqgan_last.pt", device="cpu")
    for net, same in (("G", True), ("D", False)):
        a, b = pre.members[0][net].state_dict(), last.members[0][net].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a) == same, net


def _run(script: str, *argv, capsys, monkeypatch) -> tuple[int, str, str]:
    """A CLI script run in-process, as typed (its __main__ block, sys.argv): (exit code, out, err)."""
    import runpy

    monkeypatch.setattr(sys, "argv", [script, *map(str, argv)])
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def signals(tmp_path):
    rng = np.random.default_rng(0)
    x = np.zeros((300, 20))
    for t in range(20):  # AR(1) with phi 0.7
        x[:, t] = (0.7 * x[:, t - 1] if t else 0) + rng.normal(0, 1, 300)
    p = tmp_path / "signals.txt"
    p.write_text("".join(" ".join(f"{v:.4f}" for v in row) + "\n" for row in x))
    return p


def test_continuous_cli_train_gen_and_analyse(signals, tmp_path, capsys, monkeypatch):
    tiny = ["--set", "model.pre_epochs=2", "--set", "model.dis_pre_epochs=1", "--set", "model.total_batch=2",
            "--set", "model.rounds_per_epoch=1", "--set", "model.rollout_num=2", "--set", "train.steps_per_epoch=4"]
    code, _, err = _run("main.py", "--mode", "train", "--model", "seqgan", "--data", signals, "--run_dir", "run",
                        *tiny, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    for f in ("final_samples.txt", "generator_sample.txt", "eval_file.txt", "metrics.csv"):
        assert (tmp_path / "run" / f).exists(), f
    final = np.loadtxt(tmp_path / "outputs" / "final_samples.txt")
    assert final.shape[1] == 20 and np.isfinite(final).all() and final.std() > 0.1
    code, _, err = _run("main.py", "--mode", "gen", "--checkpoint", "checkpoints/seqgan_last.pt", "--n", "7",
                        "--output", "gen.txt", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert np.loadtxt(tmp_path / "gen.txt").shape == (7, 20)
    for script in ("analyse_distributions.py", "analyze_distributions.py"):
        out = tmp_path / f"res_{script[:7]}"
        code, _, err = _run(script, "--real", signals, "--generated", "gen.txt", "--output-dir", out,
                            capsys=capsys, monkeypatch=monkeypatch)
        assert code == 0, err
        for f in ("analysis_metrics.txt", "analysis_distributions.png", "analysis_temporal.png"):
            assert (out / f).stat().st_size > 0, f
        m = json.loads((out / "analysis_metrics.json").read_text())
        assert 0 <= m["ks_statistic"] <= 1 and m["wasserstein"] >= 0 and "acf5_real" in m


def test_skip_flags_on_the_command_line(signals, capsys, monkeypatch):
    kw = dict(capsys=capsys, monkeypatch=monkeypatch)
    for flags in (["--skip-gen-pretrain", "--skip-dis-pretrain", "--skip-adversarial"],
                  ["--skip_gen_pretrain", "--skip_dis_pretrain", "--skip_adversarial"]):
        code, out, err = _run("main.py", "--mode", "train", "--model", "seqgan", "--data", signals, *flags,
                              "--show-config", **kw)
        assert code == 0, err
        assert all(f"{k}: true" in out for k in ("skip_gen_pretrain", "skip_dis_pretrain", "skip_adversarial"))
    code, _, err = _run("main.py", "--mode", "train", "--model", "markov", "--skip-adversarial", **kw)
    assert code == 2 and err.count("\n") == 1 and "--skip-adversarial does not apply to the 'markov' family" in err


def test_signal_file_needs_a_continuous_family(signals, capsys, monkeypatch):
    code, _, err = _run("main.py", "--mode", "train", "--model", "markov", "--data", signals,
                        capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and "use --model seqgan" in err and "Traceback" not in err


def test_analyse_distributions_rejects_ragged_input(signals, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.txt"
    bad.write_text("0.1 0.2 0.3\n0.4 0.5\n")
    code, _, err = _run("analyse_distributions.py", "--real", signals, "--generated", bad,
                        capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and "line 2" in err and "Traceback" not in err


def test_categorical_draw_matches_the_softmax():
    c = SeqGANConfig(hidden=8, emb=8)
    G = Policy(c, "categorical")
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]]).expand(200_000, 4)
    for temp in (1.0, 0.5):
        x = G.draw(logits, torch.Generator().manual_seed(0), temp)
        freq = torch.bincount(x, minlength=4).float() / x.numel()
        torch.testing.assert_close(freq, torch.softmax(logits[0] / temp, -1), atol=0.005, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_prefix_shared_scoring_matches_scoring_every_completion(kind):
    from models.seqgan import score, score_completions

    c = SeqGANConfig(hidden=8, emb=8, d_emb=4, d_filter_sizes=(2, 3, 5, 12), d_num_filters=(5, 5, 5, 5))
    G, D = Policy(c, kind), Discriminator(c, kind, 12)
    B, L, R = 3, 12, 2
    x = G.generate(B, L, torch.Generator().manual_seed(0))
    seqs = G.generate((L - 1) * R * B, L, torch.Generator().manual_seed(1))
    t_of_row = torch.arange(1, L).repeat_interleave(R * B)
    for i, t in enumerate(t_of_row.tolist()):  # rows of prefix t share x[b, :t]
        seqs[i, :t] = x[i % B, :t]
    torch.testing.assert_close(score_completions(D, x, seqs, R), score(D, seqs, 64), atol=1e-5, rtol=1e-5)


def _table_policy(order=1):
    """A DNA policy whose LSTM head is silent and whose n-gram table alone decides: after base b
    comes (b + 1) mod 4 (logit 60), after the start token comes C."""
    c = SeqGANConfig(hidden=8, emb=8, d_emb=4, d_filter_sizes=(2, 3, 5), d_num_filters=(6, 6, 6), ngram_order=order)
    G = Policy(c, "categorical")
    with torch.no_grad():
        G.head.weight.zero_()
        G.head.bias.zero_()
        G.ngram.table.weight.zero_()
        for b in range(4):
            G.ngram.table.weight[b, (b + 1) % 4] = 60.0
        G.ngram.table.weight[4, 1] = 60.0
    return c, G


def test_ngram_table_drives_generation_and_the_teacher_forced_pass_alike():
    _, G = _table_policy()
    x = G.generate(3, 9, torch.Generator().manual_seed(0))
    assert x[0].tolist() == [1, 2, 3, 0, 1, 2, 3, 0, 1] and (x == x[0]).all()
    assert (G(x).argmax(-1) == x).all()  # the forward pass reads the same contexts
    with torch.no_grad():
        assert float(G.mle_loss(x)) < 1e-6
    assert G.network_logits(x).abs().max() == 0  # the table is not in the network's own logits


def test_rollouts_read_the_table_with_each_completion_s_own_bases():
    """Completions are sampled past the prefix; the table must see the bases of the completion
    (sampled so far), not the sampled sequence x. With the deterministic table the batched
    rewards equal the loop reference's and D of prefix + the table's continuation."""
    c, G = _table_policy()
    D = Discriminator(c, "categorical", 10)
    x = torch.randint(0, 4, (5, 10), generator=torch.Generator().manual_seed(3))
    batched = rollout_rewards(G, D, x, 3, generator=torch.Generator().manual_seed(1), d_batch=7)
    loop = loop_rewards(G, D, x, 3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(batched, loop, atol=1e-5, rtol=1e-4)
    D.eval()
    b, t = 2, 4
    y = x[b : b + 1].clone()
    for s in range(t, 10):
        y[0, s] = (y[0, s - 1] + 1) % 4
    with torch.no_grad():
        assert abs(float(torch.sigmoid(D(y))) - float(batched[b, t - 1])) < 1e-5


def test_gaussian_policy_has_no_table_and_no_closing_fit(tmp_path):
    c = SeqGANConfig(hidden=8, emb=8, ngram_order=5, ngram_refit=100)
    assert Policy(c, "gaussian").ngram is None and Policy(c, "categorical").ngram is not None
    from models.registry import get_family

    cfg = resolve("seqgan", SeqGANConfig, {"model": {"hidden": 8, "emb": 8, "ngram_order": 3, "ngram_refit": 64}})
    fit = get_family("seqgan").closing_fit(cfg)
    nets = get_family("seqgan").build(cfg, stats("gaussian"))
    assert fit.fit(nets, torch.randn(10, 12), None, None) == {}
    fit.undo(nets)  # nothing to undo, and no error


def test_rounds_beyond_one_pass_of_a_small_genome_get_full_batches(genome, tmp_path, monkeypatch):
    """An adversarial epoch of more rounds than a pass over the training windows has batches (lambda:
    552 windows, 9 batches, 10 rounds) went on with empty batches, whose D loss is nan. The engine
    now reshuffles and goes on."""
    from models.registry import get_family
    from train.engine import train
    from utils.config import parse_set

    fam = get_family("seqgan")
    sizes = []
    step = type(fam).train_step

    def recording(self, nets, batch, ctx):
        sizes.append((ctx.phase, batch.shape[0]))
        return step(self, nets, batch, ctx)

    monkeypatch.setattr(type(fam), "train_step", recording)
    sets = ["model.hidden=8", "model.emb=8", "model.rollout_num=2", "model.d_emb=4", "model.d_filter_sizes=[2, 3]",
            "model.d_num_filters=[4, 4]", "model.pre_epochs=1", "model.dis_pre_epochs=0", "model.total_batch=12",
            "model.rounds_per_epoch=12", "model.pg_batch=4", "data.seq_len=16", "train.batch=128",
            "train.steps_per_epoch=0", "train.eval_samples=10", "train.save_every=0", "train.sample_every=0"]
    res = train(resolve("seqgan", SeqGANConfig, {"data": {"path": str(genome)}}, parse_set(sets)), save=False)
    n_train = sum(1 for p, _ in sizes if p == "gen_pretrain")  # batches in one pass (the MLE epoch)
    adv = [n for p, n in sizes if p == "adversarial"]
    assert len(adv) == 12 > n_train and min(adv) > 0
    assert all(np.isfinite(r["d_loss"]) for r in res.history if "d_loss" in r)


def test_target_gc_pulls_the_dna_policy_in_its_mle_steps():
    """--target_gc (the GC-balanced term) reaches seqgan's likelihood steps, as every family's."""
    gc = {}
    for w in (0.0, 0.5):
        torch.manual_seed(0)
        fam, nets, ctx = build_for_steps("seqgan", tiny_cfg(), stats("categorical"), lr=1e-2, epoch=0)
        assert ctx.phase == "gen_pretrain"
        ctx.balance_weight, ctx.target_gc, ctx.ref_freq = w, 0.9, None
        batch = batch_of("categorical", 32, 12, seed=4)  # GC about 0.5
        for _ in range(40):
            fam.train_step(nets, batch, ctx)
        with torch.no_grad():
            p = torch.softmax(nets["G"](batch), -1)
        gc[w] = float(p[..., 1:3].sum(-1).mean())
    assert gc[0.5] > gc[0.0] + 0.1, gc


def test_heldout_nll_reads_full_length_windows_whatever_the_curriculum_length():
    """seqgan_best.pt is picked by held-out NLL: an epoch at 20 bp of a 40 bp curriculum is scored
    on the same full-length windows as a 40 bp epoch (so two epochs compare), spread over the held-out
    set, and the figure is the policy's mean NLL per position on them."""
    import dataclasses
    cfg = tiny_cfg()
    fam, nets, ctx = build_for_steps("seqgan", cfg, stats("categorical", 40), lr=1e-2)
    g = torch.Generator().manual_seed(3)
    ctx.val = torch.randint(0, 4, (5000, 40), generator=g)
    ctx.val_labels = None
    short = fam.evaluate(nets, dataclasses.replace(ctx, length=20))["val_nll"]
    full = fam.evaluate(nets, dataclasses.replace(ctx, length=40))["val_nll"]
    assert short == pytest.approx(full, rel=1e-6)
    with torch.no_grad():
        want = float(nets["G"].mle_loss(ctx.val[::2][:2000]))
    assert full == pytest.approx(want, rel=1e-5)
