import numpy as np
import pytest
import torch

from conftest import build_for_steps

from analysis.baselines import context_counts, predict_masked
from main import main
from models.masked import IGNORE, MASK, mask_tokens, unmask
from models.registry import DataStats, get_family
from train.engine import load_ensemble, train
from utils.config import parse_set, resolve
from utils.errors import ConfigError, InputError
from utils.sequences import load_sequences, read_records, read_sequences

SMALL = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.val_windows=200",
         "train.eval_samples=20", "data.seq_len=24", "train.batch=32", "train.steps_per_epoch=10",
         "train.save_every=0", "train.sample_every=0"]


def small_cfg(genome, *sets):
    fam = get_family("masked")
    return resolve("masked", fam.Config, {"data": {"path": str(genome)}}, parse_set(SMALL + list(sets)))


def make(genome, *sets):
    return build_for_steps("masked", small_cfg(genome, *sets), DataStats(seq_len=24, base_freq=(0.25,) * 4, gc=0.5), lr=3e-3)


@pytest.mark.parametrize("bert", [False, True])
def test_masking_rate_within_tolerance_on_1e5_tokens(bert):
    x = torch.randint(0, 4, (1000, 100), generator=torch.Generator().manual_seed(0))
    inp, lab = mask_tokens(x, 0.3, torch.Generator().manual_seed(1), bert=bert)
    rate = float((lab != IGNORE).float().mean())
    assert abs(rate - 0.3) < 0.01
    m = lab != IGNORE
    assert torch.equal(lab[m], x[m]) and torch.equal(inp[~m], x[~m])  # unmasked inputs untouched
    frac_mask_token = float((inp[m] == MASK).float().mean())
    assert (abs(frac_mask_token - 0.8) < 0.02) if bert else frac_mask_token == 1.0


def test_loss_ignores_unmasked_positions(genome):
    fam, nets, ctx = make(genome)
    M = nets["M"]
    x = torch.randint(0, 4, (4, 24))
    inp, lab = mask_tokens(x, 0.3, torch.Generator().manual_seed(2))
    logits = M(inp)
    logits.retain_grad()
    torch.nn.functional.cross_entropy(logits.reshape(-1, 6), lab.reshape(-1), ignore_index=IGNORE).backward()
    g = logits.grad.abs().sum(-1)
    assert (g[lab == IGNORE] == 0).all() and (g[lab != IGNORE] > 0).all()


@pytest.mark.parametrize("pos,k", [("absolute", 0), ("rel_pos", 0), ("rope", 0), ("rope", 3)])
def test_tiny_model_overfits_a_tiny_set_above_90_percent(genome, pos, k):
    fam, nets, ctx = make(genome, "model.dropout=0", "model.mask_prob=0.15", f"model.rel_pos={str(pos == 'rel_pos').lower()}",
                          f"model.rope={str(pos == 'rope').lower()}", f"model.context_order={k}")
    assert (nets["M"].body.encoder is None) == (pos != "absolute")
    motif = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0] * 3)
    batch = torch.stack([motif.roll(s) for s in range(8)] * 4)  # 32 rotations of a periodic motif
    first = fam.train_step(nets, batch, ctx)["loss"]
    for _ in range(150):
        last = fam.train_step(nets, batch, ctx)["loss"]
    nets.eval()
    inp, lab = mask_tokens(batch, 0.15, torch.Generator().manual_seed(5))
    m = lab != IGNORE
    acc = float((nets["M"].base_logits(inp).argmax(-1)[m] == lab[m]).float().mean())
    assert last < 0.3 * first and acc > 0.9, (first, last, acc)


def test_synthetic_random_data_stays_at_chance(tmp_path):
    cfg = resolve("masked", get_family("masked").Config, {},
                  parse_set(SMALL + ["data.synthetic=3000", "train.epochs=3", "train.steps_per_epoch=30",
                                     f"train.checkpoint_dir={tmp_path}/c", f"train.run_dir={tmp_path}/r"]))
    res = train(cfg)
    acc = res.history[-1]["val_masked_acc"]
    assert 0.21 < acc < 0.29, acc
    assert abs(res.history[-1]["val_nll"] - np.log(4)) < 0.05  # the any-order bound: nothing to learn
    for k in ("loss", "grad_norm", "val_masked_loss", "peak_memory_mb"):
        assert k in res.history[-1]


def test_unmask_and_infill_never_change_known_bases(genome):
    fam, nets, ctx = make(genome)
    nets.eval()
    x = torch.randint(0, 4, (3, 24))
    tok = x.clone()
    tok[:, 5:15] = MASK
    out = unmask(nets["M"], tok, steps=4, generator=ctx.generator)
    assert torch.equal(out[:, :5], x[:, :5]) and torch.equal(out[:, 15:], x[:, 15:])
    assert (out < 4).all()
    long = torch.randint(0, 4, (100,))
    gaps = torch.zeros(100, dtype=torch.bool)
    gaps[[0, 1, 40, 41, 42, 99]] = True
    filled = fam.infill(nets, long, gaps, generator=ctx.generator)
    assert torch.equal(filled[~gaps], long[~gaps]) and (filled < 4).all()


def test_count_baseline_learns_a_deterministic_context():
    seg = np.array([0, 1, 2, 3] * 200, dtype=np.uint8)  # ACGT repeated: centre fixed by neighbours
    tables = {1: context_counts([seg], 1), 2: context_counts([seg], 2)}
    x = np.array([[0, 1, 2, 3] * 5], dtype=np.uint8)
    mask = np.zeros_like(x, dtype=bool)
    mask[0, [3, 9, 14]] = True
    pred = predict_masked(x, mask, tables)
    assert (pred[mask] == x[mask]).all()


def test_cli_train_gen_infill_and_checkpoint_reload(genome, tmp_path):
    argv = ["--mode", "train", "--model", "masked", "--data", str(genome), "--epochs", "2"]
    for s in SMALL:
        argv += ["--set", s]
    assert main(argv) == 0
    ck = "checkpoints/masked_last.pt"
    assert main(["--mode", "gen", "--checkpoint", ck, "--n", "7", "--prompt", "ACGT"]) == 0
    seqs = read_sequences(tmp_path / "outputs/generated.fasta")
    assert seqs.shape == (7, 24) and (seqs[:, :4] == [0, 1, 2, 3]).all()
    gaps = tmp_path / "gaps.fasta"
    gaps.write_text(">a first\nACGTNNNNacgt??GGCC\n>b\n" + "ACGT" * 20 + "NN" + "T" * 10 + "\n")
    for out in ("f1.fasta", "f2.fasta"):
        assert main(["--mode", "gen", "--checkpoint", ck, "--infill", str(gaps), "--output", out, "--seed", "3"]) == 0
    a, b = read_records("f1.fasta"), read_records("f2.fasta")
    assert a == b  # a reloaded checkpoint fills identically for a seed
    assert a[0][1][:4] == "ACGT" and a[0][1][8:12] == "acgt" and a[0][1][14:] == "GGCC"
    assert set(a[0][1][4:8] + a[0][1][12:14]) <= set("ACGT") and len(a[1][1]) == 92
    bad = tmp_path / "bad.fasta"
    bad.write_text(">x\nACGT*NN\n")
    assert main(["--mode", "gen", "--checkpoint", ck, "--infill", str(bad)]) == 2
    ens, _ = load_ensemble(ck)
    assert torch.equal(ens.sample(5, seed=2), ens.sample(5, seed=2))


def test_infill_is_refused_by_families_without_it(genome, tmp_path):
    assert main(["--mode", "train", "--model", "markov", "--data", str(genome), "--epochs", "1",
                 "--seq_len", "20", "--set", "train.eval_samples=20"]) == 0
    gaps = tmp_path / "g.fasta"
    gaps.write_text(">a\nACGTNNACGT\n")
    assert main(["--mode", "gen", "--checkpoint", "checkpoints/markov_last.pt", "--infill", str(gaps)]) == 2


def test_fetch_uses_entrez_then_the_cache_and_fails_offline_in_one_line(tmp_path, capsys):
    from utils import fetch as F

    class Stub:
        email = None
        calls = 0

        def efetch(self, **kw):
            Stub.calls += 1
            import io
            assert kw["id"] == "NC_001416" and kw["rettype"] == "fasta"
            return io.StringIO(">NC_001416.1 Enterobacteria phage lambda\nGGGCGGCGACCT\n")

    p = F.fetch("NC_001416", "me@example.org", tmp_path / "d", entrez=Stub())
    assert read_records(p) == [("NC_001416.1", "GGGCGGCGACCT")]
    F.fetch("NC_001416", "me@example.org", tmp_path / "d", entrez=Stub())
    assert Stub.calls == 1  # the second call is served from disk

    class Offline:
        def efetch(self, **kw):
            import urllib.error
            raise urllib.error.URLError("Temporary failure in name resolution")

    with pytest.raises(InputError, match="cannot fetch NC_000913"):
        F.fetch("NC_000913", "me@example.org", tmp_path / "d", entrez=Offline())
    assert not (tmp_path / "d/NC_000913.fasta").exists()
    with pytest.raises(ConfigError):
        F.fetch("not an accession!", "me@example.org", tmp_path)


def test_curriculum_and_init_checkpoint_fine_tuning(genome, tmp_path):
    src = train(small_cfg(genome, "train.epochs=1", f"train.checkpoint_dir={tmp_path}/a", f"train.run_dir={tmp_path}/ra"))
    tuned = train(small_cfg(genome, "train.epochs=3", "train.curriculum=true", "train.curriculum_every=1",
                            "train.balance_weight=0.3", f"train.checkpoint_dir={tmp_path}/b",
                            f"train.run_dir={tmp_path}/rb"), init_checkpoint=str(src.last_path))
    assert [r["length"] for r in tuned.history] == [2, 4, 6]  # seq_len 24: start and step round(2.4)
    assert [r["balance_weight"] for r in tuned.history] == [0.3, 0.3, 0.3]
    assert tuned.ensemble.sample(3, 24, seed=0).shape == (3, 24)


class _RecordingModel:
    """Stand-in for MaskedLM: position j's prediction is more confident the smaller j is; records
    the tokens it is shown at each step."""

    def __init__(self, L):
        self.seen = []
        conf = torch.linspace(8.0, 0.5, L)
        self.logits = torch.stack([conf, torch.zeros(L), torch.zeros(L), torch.zeros(L)], -1)

    def base_logits(self, tokens, y=None, guidance=1.0):
        self.seen.append(tokens.clone())
        return self.logits.expand(tokens.shape[0], -1, -1)


def test_reveal_order_is_random_one_position_a_step():
    L, B = 12, 300
    start = torch.full((B, L), MASK, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    rnd = _RecordingModel(L)
    out = unmask(rnd, start, steps=L, generator=g)
    for s in range(1, L):  # one position a step, in an order that differs between rows, at every step
        now = rnd.seen[s] != MASK
        assert now.sum(1).eq(s).all()
        newly = now & (rnd.seen[s - 1] == MASK)
        counts = newly.float().sum(0)
        assert (counts > 0).sum() >= min(L - s + 1, 6), (s, counts)
    assert (out != MASK).all()


def test_per_window_rates_and_per_row_loss():
    from train.losses import balanced_loss

    x = torch.randint(0, 4, (2000, 100), generator=torch.Generator().manual_seed(0))
    rates = torch.tensor([0.1, 0.9]).repeat(1000)
    _, lab = mask_tokens(x, rates, torch.Generator().manual_seed(1))
    got = (lab != IGNORE).float().mean(1)
    assert abs(float(got[0::2].mean()) - 0.1) < 0.01 and abs(float(got[1::2].mean()) - 0.9) < 0.01
    # per_row: a row scoring one position weighs as much as a row scoring nine
    logits = torch.zeros(2, 10, 4)
    logits[0, :, 0] = 5.0  # row 0 predicts A confidently everywhere
    t = torch.full((2, 10), IGNORE)
    t[0, 0] = 1  # row 0: one scored position, wrong (C)
    t[1, :9] = 0  # row 1: nine scored positions, uniform logits
    ce_wrong = float(torch.nn.functional.cross_entropy(logits[0, :1], t[0, :1]))
    ce_unif = float(np.log(4))
    row = float(balanced_loss(logits, t, weight=0, target_gc=0.5, ignore_index=IGNORE, per_row=True))
    pooled = float(balanced_loss(logits, t, weight=0, target_gc=0.5, ignore_index=IGNORE))
    assert row == pytest.approx((ce_wrong + ce_unif) / 2, rel=1e-5)
    assert pooled == pytest.approx((ce_wrong + 9 * ce_unif) / 10, rel=1e-5)


def _motif_model(genome, rate):
    fam, nets, ctx = make(genome, "model.dropout=0", f"model.mask_rate={rate}")
    motif = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0] * 3)
    batch = torch.stack([motif.roll(s) for s in range(8)] * 4)  # 32 rotations of a periodic motif
    for _ in range(600):
        fam.train_step(nets, batch, ctx)
    return nets["M"].eval(), batch


def test_any_order_nll_of_a_silent_model_is_log4_and_falls_with_training(genome):
    from models.masked import any_order_nll

    fam, nets, ctx = make(genome)
    M = nets["M"]
    with torch.no_grad():
        M.head.weight.zero_()
        M.head.bias.zero_()
    x = torch.randint(0, 4, (64, 24), generator=torch.Generator().manual_seed(0))
    assert any_order_nll(M, x) == pytest.approx(np.log(4), rel=1e-5)
    M, batch = _motif_model(genome, "uniform")
    # 8 equally likely rotations: the bound's floor is log(8) / 24 = 0.087 nats per base
    assert any_order_nll(M, batch) < 0.15


def test_uniform_rates_generate_what_fixed_rate_training_cannot(genome):
    """Generation starts from all-masked windows. Trained at uniform rates the model has met such
    inputs and writes the motif's rotations; trained at 15% it has not, and writes few."""
    rotations = None
    hits = {}
    for rate in ("uniform", "fixed"):
        M, batch = _motif_model(genome, rate)
        rotations = {tuple(r.tolist()) for r in batch}
        out = unmask(M, torch.full((32, 24), MASK), 24, generator=torch.Generator().manual_seed(3))
        hits[rate] = sum(tuple(r.tolist()) in rotations for r in out)
    assert hits["uniform"] >= 8 and hits["uniform"] >= hits["fixed"] + 8, hits


@pytest.mark.parametrize("pos", ["absolute", "rel_pos", "rope"])
def test_attention_dropout_is_its_own_option(genome, pos):
    """Residual dropout off and attention dropout off: training-mode passes are deterministic (the
    fused attention kernels can then train); attention dropout on: they are not."""
    x = torch.randint(0, 4, (4, 24))
    r = [f"model.rel_pos={str(pos == 'rel_pos').lower()}", f"model.rope={str(pos == 'rope').lower()}"]
    _, nets, _ = make(genome, "model.dropout=0", "model.attn_dropout=0", *r)
    nets.train()
    assert torch.equal(nets["M"](x), nets["M"](x))
    _, nets, _ = make(genome, "model.dropout=0", "model.attn_dropout=0.5", *r)
    nets.train()
    assert not torch.equal(nets["M"](x), nets["M"](x))
    with pytest.raises(ConfigError):
        make(genome, "model.attn_dropout=1.0")


def test_relative_bias_is_a_function_of_the_lag_and_sees_both_sides(genome):
    """rel_pos: each head's bias depends only on query - key; the masked model's attention is not
    causal (a later base changes an earlier position's prediction), and the bias changes outputs."""
    from models.blocks import RelativeBias
    rb = RelativeBias(2, 10, causal=False)
    with torch.no_grad():
        rb.table.copy_(torch.arange(2 * 19, dtype=torch.float).reshape(2, 19))
    pos = torch.arange(10)
    b = rb(pos, pos)[0]  # (heads, 10, 10)
    assert b.shape == (2, 10, 10)
    for lag in range(-9, 10):
        d = torch.diagonal(b, offset=-lag, dim1=1, dim2=2)
        assert (d == d[:, :1]).all() and (d[:, 0] == rb.table[:, lag + 9]).all()
    _, nets, _ = make(genome, "model.rel_pos=true", "model.rope=false", "model.dropout=0")
    nets.eval()
    x = torch.randint(0, 4, (3, 24), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 20] = (y[:, 20] + 1) % 4
    M = nets["M"]
    with torch.no_grad():
        assert not torch.allclose(M(x)[:, 5], M(y)[:, 5])
        before = M(x)
        M.body.blocks[0].rel.table.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
        assert not torch.allclose(M(x), before)


def test_context_tables_read_k_tokens_each_side_and_mask_as_unknown(genome):
    """model.context_order k: position i's table logits depend on tokens i-k..i-1 and i+1..i+k only,
    [MASK] and [PAD] read alike; the tables are left out below model.context_min_bases."""
    _, nets, _ = make(genome, "model.context_order=2", "model.dropout=0")
    M = nets["M"].eval()
    with torch.no_grad():  # silence the transformer: the logits are the tables' alone
        M.head.weight.zero_()
        M.head.bias.zero_()
        g = torch.Generator().manual_seed(0)
        M.near.table.weight.normal_(generator=g)
        x = torch.randint(0, 4, (1, 24), generator=g)
        base = M(x)[0, 10, :4]
        for j, changes in [(7, False), (8, True), (9, True), (11, True), (12, True), (13, False), (10, False)]:
            y = x.clone()
            y[0, j] = (y[0, j] + 1) % 4
            assert (not torch.allclose(M(y)[0, 10, :4], base)) == changes, j
        a, b = x.clone(), x.clone()
        a[0, 11], b[0, 11] = MASK, 5
        assert torch.equal(M(a), M(b)) and not torch.allclose(M(a)[0, 10, :4], base)
        assert torch.equal(M(x)[..., 4:], torch.zeros_like(M(x)[..., 4:]))  # the tables touch A, C, G, T only
    cfg = get_family("masked").Config(context_order=4, context_min_bases=1000)
    assert cfg.for_data(999)[0].context_order == 0 and "no context tables" in cfg.for_data(999)[1]
    assert cfg.for_data(1000) == (cfg, None)


def test_the_centred_table_reads_both_sides_as_one_row(genome):
    """model.context_center h: a third table row for the h tokens before and the h after together,
    so "G?TC" and "G?TA" get rows of their own (two side rows summed cannot tell them apart);
    h above the order or 3 is a config error."""
    _, nets, _ = make(genome, "model.context_order=2", "model.context_center=1", "model.dropout=0")
    near = nets["M"].near
    assert near.table.weight.shape == (2 * 25 + 25, 4) and near.refit.shape == near.table.weight.shape
    x = torch.tensor([[2, 0, 3, 1, 0]])  # G A T C A
    rows = near.index(x)
    assert rows.shape == (1, 5, 3)
    assert rows[0, 1].tolist() == [MASK * 5 + 2, 25 + 3 * 5 + 1, 50 + 2 * 5 + 3]  # before "-G", after "TC", centre "G_T"
    assert rows[0, 0, 2] == 50 + MASK * 5 + 0  # beyond the start reads as [MASK]
    a, b = x.clone(), x.clone()
    a[0, 0], b[0, 2] = MASK, 0  # changing either neighbour moves the centre row, a base two away does not
    assert rows[0, 1, 2] != near.index(a)[0, 1, 2] and rows[0, 1, 2] != near.index(b)[0, 1, 2]
    c = x.clone()
    c[0, 3] = 0
    assert near.index(c)[0, 1, 2] == rows[0, 1, 2]
    for bad in ("model.context_center=3", "model.context_center=4"):
        with pytest.raises(ConfigError, match="context_center"):
            make(genome, "model.context_order=2", bad)


@pytest.mark.parametrize("center", [0, 1])
def test_closing_refit_of_the_context_tables_matches_their_counts(genome, center):
    """With the transformer frozen, the refit tables are the maximum-likelihood ones on training
    windows masked as in training: for every row of every table (k tokens before, k after, and with
    model.context_center the tokens on both sides together) the model's expected count of each
    base at the masked positions equals the observed count."""
    fam, nets, ctx = make(genome, "model.context_order=2", "model.context_refit=300", "model.context_refit_prior=0",
                          f"model.context_center={center}")
    x = torch.from_numpy(load_sequences(genome, 24, val_fraction=0.2, seed=0).train)
    M = nets["M"]
    before = {k: v.clone() for k, v in M.state_dict().items()}
    seed = ctx.cfg.train.seed
    fit = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:300]].long()
    g = torch.Generator().manual_seed(seed + 3)  # the fit's own masks, as finish draws them
    inp, lab = mask_tokens(fit, torch.rand(fit.shape[0], generator=g), g)
    m = lab != IGNORE
    rows = M.near.index(inp)[m]
    one_hot = torch.nn.functional.one_hot(lab[m], 4).float()
    n_rows = 50 + 25 * center
    assert rows.shape[1] == 2 + center

    def counts(v):
        out = torch.zeros(n_rows, 4)
        for j in range(rows.shape[1]):
            out.index_add_(0, rows[:, j], v)
        return out
    observed = counts(one_hot)

    def expected():
        M.eval()
        with torch.no_grad():
            p = torch.softmax(M.base_logits(inp)[m], -1)
        return counts(p)

    gap_before = (expected() - observed).abs().max()
    closing = fam.closing_fit(ctx.cfg)
    out = closing.fit(nets, x, None, ctx)  # ctx.val is None: no held-out check
    assert out["refit_nll_after"] < out["refit_nll_before"] and out["refit_kept"] == 1
    changed = [k for k, v in M.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ["near.refit"]  # the trained weights themselves are untouched
    assert gap_before > 5 and ((expected() - observed).abs() - 1e-3 * observed).max() < 0.2, gap_before
    closing.undo(nets)
    assert torch.equal(M.near.refit, torch.zeros(n_rows, 4))
    assert fam.closing_fit(small_cfg(genome, "model.context_order=2", "model.context_refit=0")) is None


def test_rotary_scores_depend_on_the_lag_only_and_can_read_the_codon_phase(genome):
    """model.rope: rotated queries and keys score q_i . k_j as a function of i - j (shifting both
    positions changes nothing); the first channel pair turns a third of a circle per base, so one
    fixed query and key score keys in a cycle of three. Rotary and the bias together are refused."""
    from models.blocks import Rotary
    rot = Rotary(16)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    def score(i, j):
        return float((rot(q, i) * rot(k, j)).sum())
    for i, j in [(0, 5), (7, 3), (40, 40), (2, 61)]:
        assert abs(score(i, j) - score(i + 13, j + 13)) < 1e-4
    assert abs(score(0, 5) - score(0, 6)) > 1e-3  # and it does depend on the lag
    # only the codon pair (channels 0 and 8): a cycle of three in the lag
    qc, kc = torch.zeros(1, 1, 1, 16), torch.zeros(1, 1, 1, 16)
    qc[..., 0], kc[..., 0] = 1.0, 1.0
    s = [float((rot(qc, 0) * rot(kc, j)).sum()) for j in range(9)]
    assert all(abs(s[j] - s[j + 3]) < 1e-4 for j in range(6)) and abs(s[0] - s[1]) > 1.0
    _, nets, _ = make(genome, "model.rope=true", "model.rel_pos=false", "model.dropout=0")
    M = nets["M"]
    assert all(b.rope is not None and b.rel is None for b in M.body.blocks)
    nets.eval()
    x = torch.randint(0, 4, (3, 24), generator=g)
    y = x.clone()
    y[:, 20] = (y[:, 20] + 1) % 4
    with torch.no_grad():
        assert not torch.allclose(M(x)[:, 5], M(y)[:, 5])  # not causal
    with pytest.raises(ConfigError):
        make(genome, "model.rope=true", "model.rel_pos=true")


def test_cpu_passes_hold_cpu_pass_tokens_in_sampling_and_the_closing_fit(genome, monkeypatch):
    """On a CPU, no-grad passes hold CPU_PASS_TOKENS bases: transformer passes of 1,872 rows at
    70 bp ran at half the speed per window of passes of 64-128 (masked sampled 20,000 x 70 bp in
    14-22 min); elsewhere they stay PASS_TOKENS wide. The sampler and the refit's frozen pass
    both read windows in such passes."""
    from models import blocks
    from train import losses

    assert losses.rows_per_pass(70, 2048, "cpu") == losses.CPU_PASS_TOKENS // 70 < 2048
    assert losses.rows_per_pass(70, 2048, torch.device("cuda")) == losses.rows_per_pass(70, 2048) == losses.PASS_TOKENS // 70
    assert losses.rows_per_pass(10**6, 2048, "cpu") == 1
    monkeypatch.setattr(losses, "CPU_PASS_TOKENS", 24 * 20)  # 20 rows of 24 bp a pass
    fam, nets, ctx = make(genome)
    M, rows = nets["M"].eval(), []
    real = M.base_logits
    monkeypatch.setattr(M, "base_logits", lambda inp, *a, **k: rows.append(inp.shape[0]) or real(inp, *a, **k))
    out = fam.sample(nets, 50, 24, generator=torch.Generator().manual_seed(0))
    assert out.shape == (50, 24) and set(rows) == {20, 10}
    reads = []

    def rows_of(x, g, y):
        reads.append(x.shape[0])
        return torch.zeros(x.numel(), 4), torch.zeros(x.numel(), dtype=torch.long), x.reshape(-1)
    base, _, _ = blocks._frozen_rows(rows_of, torch.zeros(50, 24, dtype=torch.long), None, torch.device("cpu"), None)
    assert reads == [20, 20, 10] and base.shape == (50 * 24, 4)
