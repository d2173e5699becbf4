import numpy as np
import pytest

from analysis import metrics as M
from analysis.judge import JudgeSpec, c2st
from utils.sequences import encode, reverse_complement


def rand(n, L, seed=0, p=None):
    return np.random.default_rng(seed).choice(4, size=(n, L), p=p).astype(np.uint8)


def test_gc_and_composition_known():
    x = np.stack([encode("GGCC"), encode("AATT"), encode("ACGT")])
    assert M.gc_content(x).tolist() == [1.0, 0.0, 0.5]
    assert M.base_composition(encode("AAAC")).tolist() == [0.75, 0.25, 0, 0]


def test_kmer_counts_and_js():
    x = encode("ACGTA")[None]
    c = M.kmer_counts(x, 2)
    assert c.sum() == 4 and c[0 * 4 + 1] == 1 and c[3 * 4 + 0] == 1  # AC, TA
    a = rand(200, 50, 1)
    assert M.kmer_js(a, a, 4) == 0.0
    all_a = np.zeros((10, 20), np.uint8)
    all_t = np.full((10, 20), 3, np.uint8)
    assert M.kmer_js(all_a, all_t, 3) == pytest.approx(1.0)


def test_diversity_and_copies():
    x = rand(100, 40, 2)
    assert M.unique_fraction(x) == 1.0
    assert M.unique_fraction(np.concatenate([x, x[:50]])) == pytest.approx(100 / 150)
    assert M.mean_pairwise_hamming(np.zeros((5, 10), np.uint8)) == 0.0
    assert M.mean_pairwise_hamming(rand(300, 100, 3)) == pytest.approx(0.75, abs=0.02)
    seg = rand(1, 5000, 4)[0]
    gen = np.stack([seg[100:140], seg[2000:2040], rand(1, 40, 9)[0]])
    gen_rc = reverse_complement(seg[300:340][None])
    assert M.exact_copies(np.concatenate([gen, gen_rc]), [seg]) == 3
    assert M.exact_copies(gen_rc, [seg], both_strands=False) == 0
    np.testing.assert_array_equal(M.rolling_hashes(seg, 40)[[100, 2000]], M.row_hashes(gen[:2]))


def test_nearest_identity_packed():
    ref = rand(50, 70, 5)
    gen = ref[:3].copy()
    gen[0, :7] = (gen[0, :7] + 1) % 4  # 7 mismatches
    ident = M.nearest_identity(gen, ref)
    assert ident[1] == 1.0 and ident[2] == 1.0
    assert ident[0] == pytest.approx(1 - 7 / 70)


def test_morans_i_known():
    runs = encode("GGGGGAAAAA")[None]  # clustered GC: strongly positive
    alt = encode("GAGAGAGAGA")[None]  # alternating: strongly negative
    assert M.morans_i(runs)[0] == pytest.approx(10 / 9 * 7 / 10)
    assert M.morans_i(alt)[0] == pytest.approx(-1.0)
    assert np.isnan(M.morans_i(encode("AAAA")[None])[0])


def test_roc_auc_and_c2st():
    assert M.roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert M.roc_auc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    a, b = rand(1500, 40, 6), rand(1500, 40, 7)
    fast = JudgeSpec("test", epochs=3)
    same = c2st(a, b, judge=fast, repeats=1)
    assert abs(same["auc"] - 0.5) < 0.06 and same["lo"] < 0.5 < same["hi"]  # same distribution
    gc_rich = rand(1500, 40, 8, p=[0.1, 0.4, 0.4, 0.1])
    told = c2st(a, gc_rich, judge=fast, repeats=1)
    assert told["auc"] > 0.9 and told["lo"] > 0.85 and told["hi"] <= 1.0


def test_c2st_averages_repeated_judges_and_widens_its_interval_by_their_spread():
    """A C2ST figure is the mean of `repeats` cross-fitted judges (seeds seed, seed + 1, ...), each
    exactly the single-judge figure of its seed; the interval adds their spread to the bootstrap's."""
    a, b = rand(600, 30, 1), rand(600, 30, 2, p=[0.2, 0.3, 0.3, 0.2])
    fast = JudgeSpec("test", channels=8, epochs=2)
    singles = [c2st(a, b, judge=fast, seed=s, repeats=1, n_boot=50) for s in (5, 6, 7)]
    both = c2st(a, b, judge=fast, seed=5, repeats=3, n_boot=50)
    aucs = [r["auc"] for r in singles]
    assert both["repeats"] == 3 and singles[0]["repeats"] == 1
    assert both["auc"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert both["sd"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-12) and both["sd"] > 0
    half = 1.96 * both["sd"] / np.sqrt(3)  # at least; Student's t (test below) widens it further
    assert both["interval"] == "t" and singles[0]["interval"] == "bootstrap"
    assert both["lo"] <= both["auc"] - half and both["hi"] >= min(both["auc"] + half, 1.0)
    assert np.isnan(singles[0]["sd"]) and singles[0]["lo"] < singles[0]["auc"] < singles[0]["hi"]


def test_the_judge_reseeds_no_cuda_generator_and_reads_alike_on_every_device(monkeypatch):
    """The judge seeds the CPU's generators only (torch.manual_seed would also reseed CUDA's, which a
    training run on a GPU draws from while its per-epoch judge runs), and device= moves its training,
    not its draws: on the CPU the same figure to the last digit; on a GPU (where there is one) the same
    subsamples, weights and batches, rounded otherwise."""
    import torch

    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: reseeded.append(s))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda s: reseeded.append(s))
    a, b = rand(400, 30, 1), rand(400, 30, 2, p=[0.2, 0.3, 0.3, 0.2])
    fast = JudgeSpec("test", channels=8, epochs=2)
    keys = ("auc", "lo", "hi", "n")
    plain = c2st(a, b, judge=fast, repeats=1, n_boot=50)
    assert reseeded == [] and plain["device"] == "cpu"
    on_cpu = c2st(a, b, judge=fast, repeats=1, n_boot=50, device=torch.device("cpu"))
    assert [on_cpu[k] for k in keys] == [plain[k] for k in keys]
    if torch.cuda.is_available():
        gpu = c2st(a, b, judge=fast, repeats=1, n_boot=50, device="cuda")
        assert gpu["device"] == "cuda" and abs(gpu["auc"] - plain["auc"]) < 0.02 and reseeded == []


def test_the_interval_of_three_judges_uses_students_t_for_their_spread():
    """Three judges estimate their spread with 2 degrees of freedom: when it dominates the interval
    takes t(2) = 4.30, not 1.96; when the bootstrap dominates it tends to the normal 1.96; between,
    Welch-Satterthwaite's degrees of freedom put it between the two."""
    from analysis.judge import interval

    assert interval(0.0, 0.03, 3) == pytest.approx(4.303 * 0.03 / np.sqrt(3), rel=1e-3)
    assert interval(1e-4, 0.0, 3) == pytest.approx(1.960 * 1e-2, rel=1e-3)
    mixed = interval(1e-4, 0.02, 3)
    se = np.sqrt(1e-4 + 0.02**2 / 3)
    assert 1.96 * se < mixed < 4.303 * se
    assert interval(0.0, 0.0, 3) == 0.0


def test_heldout_windows_overlap_by_stride_within_segments():
    from analysis.judge import heldout_windows

    segs = [np.arange(10, dtype=np.uint8) % 4, np.zeros(3, np.uint8), np.ones(6, np.uint8)]
    w = heldout_windows(segs, 4, 3)
    # segment 1: starts 0, 3, 6; segment 2 is shorter than a window; segment 3: start 0
    assert w.shape == (4, 4) and w[1].tolist() == [3, 0, 1, 2] and w[3].tolist() == [1, 1, 1, 1]
    w2, ids = heldout_windows(segs, 4, 3, groups=True)
    assert np.array_equal(w2, w) and ids.tolist() == [0, 0, 0, 2]


def test_heldout_windows_by_stretch_share_no_base_across_groups():
    from analysis.judge import heldout_windows

    segs = [np.arange(100, dtype=np.uint8) % 4, np.zeros(30, np.uint8), np.arange(45, dtype=np.uint8) % 4]
    w, ids = heldout_windows(segs, 10, 5, groups=True, span=25)
    # segment 0, stretches [0, 25) [25, 50) [50, 75) [75, 100): starts 0 5 10 15 in each, 20 crosses the end
    # segment 1 (30 bases): starts 0 5 10 15 in its first stretch, 20 crosses it; segment 2: 0 5 10 15, then 25 30 35
    assert ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [6] * 4 + [7] * 3
    starts = np.r_[np.tile([0, 5, 10, 15], 4) + np.repeat([0, 25, 50, 75], 4), [0, 5, 10, 15], [0, 5, 10, 15, 25, 30, 35]]
    seg_of = np.r_[np.zeros(16, int), np.ones(4, int), np.full(7, 2)]
    for k in range(w.shape[0]):  # every window is its segment's bases at its start
        assert w[k].tolist() == segs[seg_of[k]][starts[k]:starts[k] + 10].tolist()
    span_of = [set(zip(seg_of[ids == g], starts[ids == g] // 25)) for g in np.unique(ids)]
    assert all(len(s) == 1 for s in span_of)  # one stretch a group: groups' windows never share a base
    assert np.array_equal(heldout_windows(segs, 10, 5, span=25), w)
    with pytest.raises(ValueError, match="shorter than a window"):
        heldout_windows(segs, 10, 5, groups=True, span=9)


def test_grouped_folds_keep_blocks_together_and_balance():
    from analysis.judge import grouped_folds

    groups = np.repeat(np.arange(8), [50, 50, 40, 40, 30, 30, 20, 20])
    fold = grouped_folds(groups, 2, np.random.default_rng(0))
    for g in range(8):
        assert np.unique(fold[groups == g]).size == 1
    sizes = np.bincount(fold, minlength=2)
    assert abs(sizes[0] - sizes[1]) <= 50  # within one group's size


def test_grouped_c2st_does_not_learn_the_heldout_set():
    """Overlapping windows of a few held-out blocks against sequences from the same distribution: with
    random folds the judge scores windows whose neighbours (most of their bases) it trained on and
    tells the sets apart; with the windows grouped by block it cannot."""
    from analysis.judge import heldout_windows

    rng = np.random.default_rng(0)
    blocks = [rng.choice(4, 100).astype(np.uint8) for _ in range(16)]
    ref, ids = heldout_windows(blocks, 40, 1, groups=True)  # 976 windows, each sharing 39 bases with the next
    other = rng.choice(4, (1200, 40)).astype(np.uint8)  # independent sequences of the same distribution
    spec = JudgeSpec("test", kernels=(9, 9), epochs=12)
    leaky = c2st(ref, other, judge=spec, n_boot=50, repeats=1)
    fair = c2st(ref, other, judge=spec, n_boot=50, real_groups=ids, repeats=1)
    assert fair["grouped"] and not leaky["grouped"]
    assert leaky["auc"] > 0.95  # it has learnt the held-out bases
    # grouped, the judge scores blocks it never saw; 16 blocks leave a spread of about 0.1 over seeds
    assert abs(fair["auc"] - 0.5) < 0.1
    # its interval resamples whole blocks: as wide as that spread, and it holds 0.5
    assert fair["lo"] < 0.5 < fair["hi"] and fair["hi"] - fair["lo"] > 0.1


def test_judge_receptive_fields():
    from analysis.judge import JUDGES

    assert JUDGES["harness"].receptive_field == 11 and JUDGES["cnn17"].receptive_field == 17
    assert JUDGES["dilated"].receptive_field == 61


def test_compare_judges_at_the_size_it_is_given(monkeypatch):
    """bench/genomes.py judges every row of a genome at the floor's size: compare(c2st_n=) caps the
    judge's sample a side; without it the judge takes the smaller of the two sets."""
    import analysis.judge as J

    seen = []

    def fake(real, gen, *, seed=0, max_n=20000, **kw):
        n = min(real.shape[0], gen.shape[0], max_n)
        seen.append(n)
        return {"auc": 0.5, "lo": 0.45, "hi": 0.55, "sd": 0.0, "repeats": 1, "n": n, "judge": "fake", "device": "cpu"}

    monkeypatch.setattr(J, "c2st", fake)
    ref, gen = rand(300, 40, 1), rand(120, 40, 2)
    assert M.compare(gen, ref, ks=(4,), c2st_n=50)["c2st_n"] == 50
    assert M.compare(gen, ref, ks=(4,))["c2st_n"] == 120
    assert seen == [50, 120]


def test_compare_passes_the_reference_blocks_to_the_judge_at_length():
    """At 200 bp (a grown, residual judge) overlapping windows of 12 random blocks against independent
    random DNA of the same distribution: with random folds the judge learns the blocks' own bases
    (AUC well above 0.5); with ref_groups (compare -> c2st's real_groups) it cannot."""
    from analysis import metrics as M
    from analysis.judge import heldout_windows

    rng = np.random.default_rng(0)
    segs = [rng.integers(0, 4, 3000).astype(np.uint8) for _ in range(12)]
    val, groups = heldout_windows(segs, 200, 10, groups=True)
    gen = rng.integers(0, 4, (300, 200)).astype(np.uint8)
    grouped = M.compare(gen, val, c2st=True, ref_groups=groups, c2st_n=300)["c2st_auc"]
    leaky = M.compare(gen, val, c2st=True, c2st_n=300)["c2st_auc"]
    assert abs(grouped - 0.5) < 0.05 and leaky > grouped + 0.1


def test_compare_groups_a_generated_side_that_is_real_windows(monkeypatch):
    """compare's gen_groups reach the judge as c2st's gen_groups (bench/genomes.py's grouped floor)."""
    from analysis import metrics as M

    seen = []
    monkeypatch.setattr(M, "c2st_row", lambda r, g, **kw: seen.append(kw) or {"c2st_auc": 0.5})
    rng = np.random.default_rng(0)
    ref, gen = rng.integers(0, 4, (40, 70)), rng.integers(0, 4, (40, 70))
    ids = np.arange(40) // 4
    M.compare(gen, ref, ks=(4,), ref_groups=ids, gen_groups=ids[::-1])
    assert np.array_equal(seen[-1]["real_groups"], ids) and np.array_equal(seen[-1]["gen_groups"], ids[::-1])
    M.compare(gen, ref, ks=(4,))
    assert "gen_groups" not in seen[-1] and "real_groups" not in seen[-1]
