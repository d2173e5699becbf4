"""bench/quality_rescore.py: a finished run's kept sets judged again, the earlier figures kept beside
the new ones, with the judge's folds grouped by held-out block above 70 bp as bench/quality.py does."""
import sys

import numpy as np
import pytest

from conftest import ROOT, random_dna

sys.path.insert(0, str(ROOT / "bench"))
import quality_rescore  # noqa: E402


@pytest.mark.parametrize("L, option, grouped", [(60, None, False), (80, None, True), (80, False, False)])
def test_rescore_judges_the_kept_sets_again_and_keeps_the_earlier_figures(tmp_path, L, option, grouped):
    from analysis.judge import heldout_windows
    from utils.sequences import load_sequences

    genome = tmp_path / "long.fasta"  # one 40 kb record: split into interleaved blocks (4 held out), so folds can group
    genome.write_text(f">rec1\n{random_dna(40000, seed=3)}\n")
    data = load_sequences(str(genome), L, val_fraction=0.2, seed=0)
    val, groups = heldout_windows(data.val_segments, L, 10, groups=True)
    assert len(np.unique(groups)) >= 4 and min(len(val), data.train.shape[0]) >= 40
    uniform = np.random.default_rng(0).integers(0, 4, (40, L)).astype(np.uint8)
    sets = {"names": np.array(["real (train windows)", "uniform random"]), "row0": data.train[:40], "row1": uniform}
    res = {"argv": ["quality.py", "--seq_len", str(L), "--data", str(genome), "--ref_stride", "10"],
           "rows": [{"set": "real (train windows)", "c2st_auc": 0.123, "c2st_judge": "old"},
                    {"set": "uniform random", "c2st_auc": 0.456, "c2st_judge": "old"}]}
    out = quality_rescore.rescore(res, sets, name="q", motifs="none", c2st=True, grouped=option, tag="t")
    assert out is res
    assert [r["c2st_auc_before"] for r in res["rows"]] == [0.123, 0.456]
    assert all(r["c2st_judge_before"] == "old" and r["c2st_judge"] != "old" for r in res["rows"])
    assert all(r["c2st_grouped"] is grouped and r["c2st_n"] == 40 for r in res["rows"])
    assert all(r["c2st_lo"] <= r["c2st_auc"] <= r["c2st_hi"] and 0.0 <= r["c2st_auc"] <= 1.0 for r in res["rows"])
    assert res["c2st_command"].endswith(("--grouped" if grouped else "--no-grouped") + " --tag t")


def test_the_benchmarks_judge_against_the_blocks_training_held_out(tmp_path):
    """bench/common.judged_split is the split of every quality benchmark: its training windows are
    those `--mode train` reads (seed 42) though the benchmarks seed 0, and no held-out window is one of
    them; each held-out window is a window of its block, every `stride` bases."""
    from common import judged_split
    from utils.config import DataConfig
    from utils.modality import load

    genome = tmp_path / "long.fasta"
    genome.write_text(f">rec1\n{random_dna(40000, seed=5)}\n")
    data, ref, groups = judged_split(str(genome), 50, 0, 7)
    _, trained = load(DataConfig(path=str(genome), seq_len=50), seed=42)
    np.testing.assert_array_equal(data.train, trained.train)
    assert not {w.tobytes() for w in ref} & {w.tobytes() for w in trained.train}
    assert len(ref) == len(groups) and len(np.unique(groups)) == len(data.val_segments) >= 4
    for g, seg in enumerate(data.val_segments):
        mine = ref[groups == g]
        assert len(mine) == (len(seg) - 50) // 7 + 1
        np.testing.assert_array_equal(mine[1], np.asarray(seg)[7:57])
