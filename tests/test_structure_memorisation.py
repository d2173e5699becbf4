"""Structure statistics (periodicity, ORFs), the Fréchet distance, and memorisation by the k-mer index."""
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from analysis import compare as C
from analysis import frechet as FD
from analysis.neighbours import KmerIndex, near_copies_row, redraw_near_copies, seed_k
from analysis.structure import longest_orf, period3_power, structure_row
from main import main
from utils.sequences import encode, read_sequences, reverse_complement


def codes(s: str) -> np.ndarray:
    return encode(s)[None, :]


def rand(n, L, seed=0, p=None):
    return np.random.default_rng(seed).choice(4, size=(n, L), p=p).astype(np.uint8)


def naive_orf(row) -> int:
    """Longest ATG...stop (or ATG...end) in bases, stop excluded, both strands, by string search."""
    best = 0
    for s in ("".join("ACGT"[c] for c in row), "".join("ACGT"[c] for c in reverse_complement(row[None])[0])):
        for i in range(len(s) - 2):
            if s[i : i + 3] == "ATG":
                j = i
                while j + 3 <= len(s) and s[j : j + 3] not in ("TAA", "TAG", "TGA"):
                    j += 3
                best = max(best, j - i)
    return best


def test_longest_orf_hand_made_and_against_a_string_search():
    assert longest_orf(codes("CCATGAAACCCTAGCC"))[0] == 9  # ATG AAA CCC, then TAG
    assert longest_orf(codes("CCATGAAACCC"))[0] == 9  # cut by the window's end: counted to the end
    assert longest_orf(codes("CCCTTTCATCC"))[0] == 9  # reverse strand: GGATGAAAGGG -> ATG AAA GGG to the end
    assert longest_orf(codes("CCTTACATCC"))[0] == 3  # reverse strand: GGATGTAAGG -> ATG, then TAA
    assert longest_orf(codes("CCCCCCCCC"))[0] == 0  # no ATG anywhere
    assert longest_orf(codes("ATGTAA"))[0] == 3
    x = rand(300, 61, 1)
    assert longest_orf(x).tolist() == [naive_orf(r) for r in x]


def test_period3_power_sees_codon_structure_and_not_the_frame():
    rng = np.random.default_rng(0)
    iid = rand(4000, 99, 2)
    assert period3_power(iid).mean() == pytest.approx(0.75, abs=0.02)  # 1 - sum p^2 for equal frequencies
    codon = np.tile(rng.integers(0, 4, (200, 3)), (1, 34))[:, :99]  # a repeated codon: all power at period 3
    assert period3_power(codon).mean() > 20
    # biased codon positions (third position mostly G), in a random frame per sequence
    x = rand(2000, 102, 3)
    x[:, 2::3] = np.where(rng.random((2000, 34)) < 0.7, 2, x[:, 2::3])
    shifted = np.stack([np.roll(r, s)[:99] for r, s in zip(x, rng.integers(0, 3, 2000))])
    assert period3_power(x[:, :99]).mean() == pytest.approx(period3_power(shifted).mean(), rel=0.03)
    assert period3_power(shifted).mean() > 1.5 * period3_power(iid).mean()


def test_structure_row_is_zero_for_the_same_set_and_separates_coding_like_sets():
    x = rand(500, 90, 4)
    same = structure_row(x, x)
    assert same["period3_gap"] == 0 and same["orf_ks"] == 0 and same["period3_ks"] == 0
    no_stops = np.where(x == 3, 2, x)  # no T: no stop codon on the forward strand, ATG impossible too
    with_atg = no_stops.copy()
    with_atg[:, :3] = [0, 3, 2]  # ATG at the start, never stopped
    r = structure_row(with_atg, x)
    assert r["orf_longest_mean"] == 90 and r["orf_ks"] > 0.9


def test_seed_k_keeps_the_pigeonhole_guarantee():
    for L, x in [(70, 0.9), (500, 0.9), (1000, 0.95), (70, 1.0), (500, 0.8)]:
        k = seed_k(L, x)
        mismatches = int((1 - x) * L + 1e-9)
        assert 8 <= k <= 31 and (L // k > mismatches or k == 8)
        assert KmerIndex([], k).guaranteed_identity(L) <= x or k == 8


def test_kmer_index_finds_mutated_copies_at_any_offset_and_strand_exactly():
    rng = np.random.default_rng(5)
    segs = [rng.integers(0, 4, 3000).astype(np.uint8) for _ in range(3)]
    L, rows, truth = 80, [], []
    for i in range(120):
        s, st = rng.integers(0, 3), rng.integers(0, 3000 - L)
        w = segs[s][st : st + L].copy()
        nm = int(rng.integers(0, 15))
        pos = rng.choice(L, nm, replace=False)
        w[pos] = (w[pos] + 1 + rng.integers(0, 3, nm)) % 4  # always a different base
        rows.append(reverse_complement(w[None])[0] if i % 2 else w)
        truth.append(1 - nm / L)
    x, truth = np.array(rows), np.array(truth)
    index = KmerIndex.for_identity(segs, L, 0.9)
    got = index.max_identity(x)

    def brute(w):
        best = 0.0
        for s in segs:
            win = sliding_window_view(s, L)
            best = max(best, (win == w).mean(1).max(), (win == reverse_complement(w[None])[0]).mean(1).max())
        return best

    exact = np.array([brute(w) for w in x])
    hi = exact >= 0.9
    assert hi.sum() > 40 and np.array_equal(got[hi], exact[hi])  # exact wherever it matters
    assert np.all(got <= exact + 1e-12)  # below the threshold: a lower bound, never above the truth
    fwd = index.max_identity(x[0::2], both_strands=False)
    assert np.array_equal(fwd[hi[0::2]], exact[0::2][hi[0::2]])
    # a window never spans two segments: the junction of segments 0 and 1 is not a training window
    junction = np.concatenate([segs[0][-40:], segs[1][:40]])[None]
    assert index.max_identity(junction, both_strands=False)[0] < 0.9
    train_windows = sliding_window_view(segs[2], L)[::97]
    assert near_copies_row(train_windows, rand(50, L, 9), segs)["near_copies"] == 1.0
    assert near_copies_row(rand(50, L, 9), train_windows, segs) == {
        "near_copies": 0.0, "near_copies_threshold": 0.9, "near_copies_n": 50, "near_copies_ref": 1.0}
    half = np.concatenate([train_windows[:10], rand(10, L, 10)])
    assert near_copies_row(half, train_windows, segs, max_n=8)["near_copies_n"] == 8


def test_redraw_near_copies_replaces_exactly_the_close_ones():
    rng = np.random.default_rng(6)
    seg = rng.integers(0, 4, 5000).astype(np.uint8)
    L = 60
    x = rand(40, L, 7)
    x[::4] = sliding_window_view(seg, L)[rng.integers(0, 4000, 10)]  # 10 verbatim copies
    x[1::8] = reverse_complement(sliding_window_view(seg, L)[rng.integers(0, 4000, 5)])  # 5 on the other strand
    draws = []

    def draw(m, r):
        draws.append((m, r))
        return rand(m, L, 100 + r)

    kept, redrawn, dropped = redraw_near_copies(x, draw, [seg], 0.8)
    assert redrawn == 15 and dropped == 0 and draws == [(15, 0)] and kept.shape == (40, L)
    assert np.array_equal(kept[2::4][:5], x[2::4][:5])  # the others are untouched
    assert KmerIndex([seg], 8).max_identity(kept).max() <= 0.8
    # a sampler that only ever copies: dropped after max_rounds, with a count
    kept, redrawn, dropped = redraw_near_copies(x, lambda m, r: sliding_window_view(seg, L)[:m], [seg], 0.8,
                                                max_rounds=3)
    assert dropped == 15 and redrawn == 45 and kept.shape == (25, L)


def test_frechet_distance_known_answers_and_the_cached_encoder(tmp_path):
    # 1-D Gaussians: (mu_a - mu_b)^2 + (s_a - s_b)^2
    assert FD.frechet_from_stats(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == \
        pytest.approx(4 + 1)
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    S = A @ A.T + np.eye(6)
    assert FD.frechet_from_stats(np.zeros(6), S, np.zeros(6), S) == pytest.approx(0, abs=1e-8)
    e = rng.normal(size=(2000, 5))
    assert FD.frechet(e, e) == pytest.approx(0, abs=1e-8)
    # on sequences: another composition is far, the same source close
    train, ref = rand(1500, 40, 1, p=[0.35, 0.15, 0.15, 0.35]), rand(600, 40, 2, p=[0.35, 0.15, 0.15, 0.35])
    spec = FD.EncoderSpec(channels=16, steps=60)
    same = FD.frechet_row(rand(600, 40, 3, p=[0.35, 0.15, 0.15, 0.35]), ref, train, spec=spec, progress=False)
    other = FD.frechet_row(rand(600, 40, 4), ref, train, spec=spec, progress=False)
    assert other["fd"] > 5 * max(same["fd"], same["fd_floor"])
    assert other["fd_lo"] <= other["fd"] <= other["fd_hi"] and same["fd_n"] == 600
    # the encoder was cached: the second fit loads the same weights without training
    files = list((tmp_path / "cache" / "frechet").glob("*.pt"))
    assert len(files) == 1
    a = FD.fit_encoder(train, spec, progress=False)
    files[0].write_bytes(b"damaged")  # a damaged cache file is retrained, not trusted
    b = FD.fit_encoder(train, spec, progress=False)
    assert all(torch_equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_mark_floor_names_the_overlapping_intervals():
    floor = {"c2st_lo": 0.50, "c2st_hi": 0.54, "fd_lo": 1.0, "fd_hi": 2.0}
    rows = [{"model": "a", "c2st_lo": 0.53, "c2st_hi": 0.57, "fd_lo": 2.5, "fd_hi": 3.0},
            {"model": "b", "c2st_lo": 0.60, "c2st_hi": 0.64, "fd_lo": 1.5, "fd_hi": 2.2, "c2st_underpowered": True},
            {"model": "c", "c2st_lo": 0.70, "c2st_hi": 0.74}]
    C.mark_floor(rows, floor)
    assert [r["vs_floor"] for r in rows] == ["c2st overlaps floor", "fd overlaps floor; underpowered", "-"]


def test_the_judge_is_said_to_have_no_power_where_markov_5_overlaps_the_floor():
    floor = {"c2st_auc": 0.680, "c2st_lo": 0.645, "c2st_hi": 0.715}
    lambda_like = [{"model": "seqgan", "c2st_auc": 0.66, "c2st_lo": 0.63, "c2st_hi": 0.69},
                   {"model": "markov-5 baseline", "c2st_auc": 0.686, "c2st_lo": 0.651, "c2st_hi": 0.721}]
    note = C.judge_power_note(lambda_like, floor)
    assert note and "no power" in note and "0.6860 [0.6510, 0.7210]" in note and "0.6800 [0.6450, 0.7150]" in note
    t4_like = [{"model": "markov-5 baseline", "c2st_auc": 0.747, "c2st_lo": 0.730, "c2st_hi": 0.764}]
    assert C.judge_power_note(t4_like, {"c2st_auc": 0.557, "c2st_lo": 0.540, "c2st_hi": 0.574}) is None
    # a chain read below the floor is no power either (the judge learns regions, not bases: stop 51);
    # no baseline row, no floor or no interval: nothing is claimed
    below = [{"model": "markov-5 baseline", "c2st_lo": 0.58, "c2st_hi": 0.62}]
    assert C.judge_power_note(below, floor) is not None
    assert C.judge_power_note(lambda_like[:1], floor) is None and C.judge_power_note(lambda_like, None) is None
    assert C.judge_power_note([{"model": "markov-5 baseline", "c2st_auc": 0.69}], floor) is None


def test_gen_max_identity_redraws_copies_of_the_training_data(tmp_path, capsys):
    # a periodic genome: an order-5 chain reproduces its training windows almost verbatim
    rng = np.random.default_rng(3)
    unit = "".join(rng.choice(list("ACGT"), 37))
    noisy = "".join(c if rng.random() > 0.03 else "ACGT"[rng.integers(4)] for c in unit * 300)
    (tmp_path / "rep.fasta").write_text(">rep\n" + noisy + "\n" + ">other\n" + "".join(rng.choice(list("ACGT"), 6000)) + "\n")
    assert main(["--mode", "train", "--model", "markov", "--data", "rep.fasta", "--seq_len", "40", "--epochs", "1",
                 "--set", "model.order=5", "--set", "train.eval_samples=20"]) == 0
    ck = "checkpoints/markov_best.pt"
    assert main(["--mode", "gen", "--checkpoint", ck, "--n", "60", "--output", "plain.fasta"]) == 0
    assert main(["--mode", "gen", "--checkpoint", ck, "--n", "60", "--output", "limited.fasta",
                 "--max_identity", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "--max_identity 0.9:" in out and "redrawn" in out
    from utils.sequences import load_sequences

    segs = load_sequences("rep.fasta", 40, val_fraction=0.2, seed=42).train_segments
    index = KmerIndex.for_identity(segs, 40, 0.9)
    plain, limited = read_sequences("plain.fasta"), read_sequences("limited.fasta")
    assert (index.max_identity(plain) > 0.9).sum() > 0  # there was something to redraw
    assert index.max_identity(limited).max() <= 0.9 and 0 < len(limited) <= 60
    n_redrawn = int(out.split("--max_identity 0.9: ")[1].split()[0])
    assert n_redrawn >= (index.max_identity(plain) > 0.9).sum()
    # errors are one line, exit code 2
    assert main(["--mode", "gen", "--checkpoint", ck, "--max_identity", "0.9", "--data", "nowhere.fasta"]) == 2
    assert "nowhere.fasta" in capsys.readouterr().err


def test_motif_scan_counts_planted_sites_on_either_strand(monkeypatch, tmp_path):
    from analysis import motifs as MO
    from utils.errors import ConfigError

    real_load = MO.load_matrices
    pwm = lambda s: np.array([[20.0 * (c == b) for c in s] for b in "ACGT"])  # noqa: E731
    mats = [pwm("TATAATGC"), pwm("GGCCAATCG"), pwm("CACGTGAT")]
    monkeypatch.setattr(MO, "load_matrices", lambda group: (["M1", "M2", "M3"], ["tata", "ccaat", "ebox"], mats))
    ref = rand(800, 60, 1)
    ref[:200, 5:13] = encode("CACGTGAT")  # the reference has the third motif in a quarter
    gen = rand(800, 60, 2)
    gen[:400, 10:18] = encode("TATAATGC")  # half carry the first motif ...
    gen[400:600, 30:39] = reverse_complement(encode("GGCCAATCG")[None])[0]  # ... a quarter the second, reversed
    ref_m = MO.MotifReference(ref, group="all", progress=False)
    row, arrays = ref_m.row(gen)
    r_gen, r_ref, labels = arrays["motif_rates"]
    assert r_gen[0] >= 0.5 and r_gen[1] >= 0.25 and r_ref[:2].max() < 0.05 and r_ref[2] >= 0.25
    assert set(list(row["motif_over"])[:2]) == {"M1 tata", "M2 ccaat"} and list(row["motif_under"])[0] == "M3 ebox"
    assert row["motif_count"] == 3 and row["motif_pearson_r"] < 0
    assert ref_m.row(ref)[0]["motif_pearson_r"] == pytest.approx(1.0)
    # the figure and the report keys
    from analysis.report import READINGS, analyze

    m = analyze(gen, ref, tmp_path / "an", motifs="all", c2st=False, progress=False)
    assert (tmp_path / "an" / "motifs.png").stat().st_size > 0
    assert {k for k in m if k.startswith("motif_")} <= set(READINGS)
    with pytest.raises(ConfigError, match="choose one of"):
        real_load("prokaryotes")  # pyjaspar ships none: a clear error, before any database read


def test_motif_reference_is_scanned_once_and_then_read_from_its_cache(monkeypatch):
    """A second reference of the same windows and matrices reads its thresholds and hit rates from
    the cache (no scan of the reference or the null sequence) and scores a set identically; other
    windows or other matrices are scanned afresh."""
    from analysis import motifs as MO

    pwm = lambda s: np.array([[20.0 * (c == b) for c in s] for b in "ACGT"])  # noqa: E731
    mats = [pwm("TATAATGC"), pwm("CACGTGAT")]
    monkeypatch.setattr(MO, "load_matrices", lambda group: (["M1", "M2"], ["tata", "ebox"], mats))
    ref, gen = rand(300, 60, 1), rand(300, 60, 2)
    ref[:100, 5:13] = encode("CACGTGAT")
    first = MO.MotifReference(ref, progress=False)
    scans = []
    real = MO.Scanner.hit_rates
    monkeypatch.setattr(MO.Scanner, "hit_rates", lambda self, x, progress=True: scans.append(len(x)) or real(self, x, False))
    again = MO.MotifReference(ref, progress=False)
    assert not first.cached and again.cached and scans == []
    np.testing.assert_array_equal(again.rates, first.rates)
    assert again.scan.thresholds == pytest.approx(first.scan.thresholds)
    assert again.row(gen)[0] == first.row(gen)[0] and scans == [300, 300]
    assert not MO.MotifReference(ref[:200], progress=False).cached  # other windows
    mats[1] = pwm("CACGTGTT")  # other matrices, same windows
    assert not MO.MotifReference(ref, progress=False).cached


def test_the_judge_grows_with_the_length():
    from analysis.judge import DEFAULT, JUDGES, for_length

    base = JUDGES[DEFAULT]
    assert for_length(base, 70) is base  # every 70 bp figure keeps its judge
    for L in (200, 500, 1000):
        g = for_length(base, L)
        assert g.receptive_field >= L / 2 and g.name.startswith(base.name + "_rf")
        assert g.receptive_field > for_length(base, L // 2).receptive_field
        assert g.residual and g.name.endswith("_res") and not base.residual


def test_a_grown_judge_adds_each_later_layer_to_its_input():
    """The deep judges (500 and 1,000 bp) are residual: h + relu(conv(h)) after the first layer;
    the 70 bp judge stays a plain stack."""
    from analysis.judge import DEFAULT, JUDGES, JudgeNet, for_length

    torch.manual_seed(0)
    x = torch.randint(4, (3, 300))
    one_hot = torch.nn.functional.one_hot(x, 4).float().transpose(1, 2)
    for spec in (for_length(JUDGES[DEFAULT], 300), JUDGES[DEFAULT]):
        net = JudgeNet(spec)
        convs = [m for m in net.conv if isinstance(m, torch.nn.Conv1d)]
        h = torch.relu(convs[0](one_hot))
        for conv in convs[1:]:
            h = h + torch.relu(conv(h)) if spec.residual else torch.relu(conv(h))
        assert torch.allclose(net.features(one_hot), h, atol=1e-6)
        assert len(convs) == len(spec.kernels) and (len(convs) > 4) == spec.residual
        assert net(x).shape == (3,)
