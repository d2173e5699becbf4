"""Conditional fidelity: does a sequence generated for a label look like that label's real DNA?

An independent classifier (the C2ST judge's CNN with one output per label, analysis.judge) learns
the labels from the real labelled training windows, never from generated ones. It then reads the
generated set, whose headers say which label each sequence was asked for:

- conditional_accuracy: the fraction it assigns to the requested label;
- ceiling: the same classifier's accuracy on real held-out windows, weighted to the generated set's
  mix of labels (what a perfect conditional generator would score), and chance (1 / labels);
- per label: that label's accuracy and ceiling, GC (generated vs real held-out), 4-mer JS and the
  C2ST AUC of its generated sequences against its real held-out windows;
- the confusion matrix (requested x assigned, rows sum to 1) for the figure.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from analysis import metrics as M
from analysis.judge import DEFAULT, JUDGES, JudgeNet, for_length


class LabelClassifier:
    """The judge's CNN trained to tell the labels apart on real windows, both strands: at most
    ``max_per_label`` windows of each label, each label weighted by the inverse of its share, so a
    frequent label is not favoured."""

    def __init__(self, x, y, n_labels: int, *, seed: int = 0, max_per_label: int = 10000, judge: str = DEFAULT):
        x, y = M.as_codes(x), np.asarray(y, dtype=np.int64)
        self.spec = for_length(JUDGES[judge], x.shape[1])
        self.length, self.n_labels = x.shape[1], n_labels
        rng = np.random.default_rng(seed)
        rows = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:max_per_label] for k in range(n_labels)])
        # both strands: a window's reverse complement belongs to the same label
        X = torch.from_numpy(np.concatenate([x[rows], 3 - x[rows, ::-1]]).astype(np.int64))
        Y = torch.from_numpy(np.concatenate([y[rows], y[rows]]))
        # each label weighs the same in the loss, however many windows it has
        weight = torch.from_numpy((Y.numel() / (n_labels * np.bincount(Y.numpy(), minlength=n_labels).clip(1)))
                                  .astype(np.float32))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU's only: torch.manual_seed reseeds CUDA too
            self.net = JudgeNet(self.spec, n_out=n_labels)
            opt = torch.optim.Adam(self.net.parameters(), lr=self.spec.lr)
            g = torch.Generator().manual_seed(seed)
            for _ in range(self.spec.epochs):
                order = torch.randperm(X.shape[0], generator=g)
                for s in range(0, order.numel(), self.spec.batch):
                    idx = order[s : s + self.spec.batch]
                    loss = F.cross_entropy(self.net(X[idx]), Y[idx], weight=weight)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        self.net.eval()

    @torch.no_grad()
    def predict(self, x) -> np.ndarray:
        x = torch.from_numpy(M.as_codes(x)[:, : self.length].astype(np.int64))
        if not x.shape[0]:
            return np.zeros(0, np.int64)
        return torch.cat([self.net(x[s : s + 4096]).argmax(1) for s in range(0, x.shape[0], 4096)]).numpy()


def fidelity_row(gen, gen_labels, train, train_labels, val, val_labels, label_names, *, seed: int = 0,
                 c2st: bool = True, classifier: LabelClassifier | None = None, val_groups=None,
                 floor=None, judge_device=None) -> tuple[dict, dict]:
    """(figures, arrays) of the conditional fidelity of ``gen`` (codes) whose rows were asked for
    ``gen_labels`` (names); the reference is real labelled windows: the classifier trains on
    (train, train_labels), its ceiling is read on (val, val_labels) (label indices into
    label_names: analyze's and compare_models' reference windows, analysis.judge.reference_labels);
    val_groups: each val window's block, kept in one fold by each label's C2ST judge; floor:
    (windows, labels) of real training windows apart from val: each label's C2ST then reads beside
    its real-vs-real floor, both judged at one size (label_<name>_c2st_floor, _vs_floor);
    ``classifier``: one already trained on them (several sets share it); judge_device: where the
    label C2STs' judges train (None: the CPU). Per-label figures are keys
    label_<name>_<figure>. arrays: {"confusion": (K, K) row-normalised, "label_names": [...],
    "per_label": {name: figures}}."""
    names = list(label_names)
    unknown = sorted({lab for lab in gen_labels if lab not in names})
    if unknown:
        raise ValueError(f"generated labels {', '.join(unknown)} are not labels of the reference "
                         f"({', '.join(names)})")
    K = len(names)
    gen = M.as_codes(gen)
    asked = np.array([names.index(lab) for lab in gen_labels], dtype=np.int64)
    clf = classifier or LabelClassifier(train, train_labels, K, seed=seed)
    got, real_pred = clf.predict(gen), clf.predict(val)
    val_labels = np.asarray(val_labels, dtype=np.int64)
    recall_real = np.array([(real_pred[val_labels == k] == k).mean() if (val_labels == k).any() else np.nan
                            for k in range(K)])
    share = np.bincount(asked, minlength=K) / max(1, asked.size)
    row = {"conditional_accuracy": float((got == asked).mean()) if asked.size else float("nan"),
           "conditional_ceiling": float(np.nansum(share * recall_real)),
           "conditional_chance": 1.0 / K, "conditional_labels": K,
           "real_heldout_accuracy": float((real_pred == val_labels).mean()) if val_labels.size else float("nan")}
    row["conditional_vs_ceiling"] = row["conditional_accuracy"] / row["conditional_ceiling"] \
        if row["conditional_ceiling"] > 0 else float("nan")
    confusion = np.zeros((K, K))
    per_label = {}
    for k, name in enumerate(names):
        mine, real = gen[asked == k], M.as_codes(val)[val_labels == k]
        if not mine.shape[0]:
            continue
        confusion[k] = np.bincount(got[asked == k], minlength=K) / mine.shape[0]
        lab = {"n": int(mine.shape[0]), "accuracy": float(confusion[k, k]), "ceiling": float(recall_real[k]),
               "gc": float(M.gc_content(mine).mean()),
               "gc_ref": float(M.gc_content(real).mean()) if real.shape[0] else float("nan"),
               "js_4mer": M.kmer_js(mine, real, 4) if real.shape[0] else float("nan")}
        if c2st:
            groups = None if val_groups is None else np.asarray(val_groups)[val_labels == k]
            lab.update(_label_c2st(mine, real, groups, None if floor is None else floor[0][floor[1] == k], seed,
                                   judge_device))
        per_label[name] = lab
    for name, lab in per_label.items():  # flat keys: report tables and CSV columns
        row.update({f"label_{name}_{k}": v for k, v in lab.items()})
    return row, {"confusion": confusion, "label_names": names, "per_label": per_label}


def _label_c2st(mine, real, groups, floor_set, seed: int, judge_device=None) -> dict:
    """One label's C2ST of its generated rows against its reference windows; with floor_set (that
    label's training windows) beside the real-vs-real floor, both at one size (analysis.report's
    judge_reading for the whole set)."""
    from analysis.report import judge_reading

    apart = floor_set is not None and floor_set.shape[0] > 0
    size = {"max_n": M.judge_size(min(mine.shape[0], floor_set.shape[0]))} if apart else {}
    c = M.c2st_row(real, mine, seed=seed, real_groups=groups, device=judge_device, **size)
    out = {k: c[k] for k in ("c2st_auc", "c2st_lo", "c2st_hi", "c2st_n")}
    if apart:
        out.update(judge_reading(c, real, floor_set, seed=seed, ref_groups=groups, judge_device=judge_device))
    return out
