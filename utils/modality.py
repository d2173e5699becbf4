"""What kind of sequences a run models: DNA or real-valued. One object per kind does everything
that differs (loading, batch dtype, statistics, the per-epoch monitor, sample files, log lines);
``load`` is the one place that decides which, from the data options.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from analysis import metrics as M
from models.registry import DataStats
from utils.errors import ConfigError
from utils.sequences import (SequenceData, decode, encode_strict, is_signal_file, load_sequences, load_signals,
                             generated_fasta, lines_text, write_fasta, write_samples)
from utils.outputs import write_texts


def _label_freq(data) -> tuple:
    """Each label's share of the training windows (() without labels)."""
    counts = [tr for tr, _ in data.label_counts().values()] if hasattr(data, "label_counts") else []
    return tuple(c / max(1, sum(counts)) for c in counts)


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


class DNA:
    kind = "dna"
    name = "DNA"
    windows = True  # cut from genomes: the length curriculum can grow them

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        return x.long()

    def stats(self, data) -> DataStats:
        pct = data.gc_percentiles()
        return DataStats(seq_len=data.seq_len, base_freq=tuple(float(f) for f in data.base_freq()),
                         gc=float(data.gc()), gc_percentiles=tuple(float(v) for v in pct), kind=self.kind,
                         label_names=tuple(data.label_names), label_freq=_label_freq(data),
                         label_gc_percentiles=tuple(tuple(float(v) for v in p) for p in data.label_gc_percentiles()))

    def target_gc(self, requested, data) -> float:
        return float(requested) if requested is not None else float(data.gc())

    def monitor(self, sample, val, epoch: int) -> dict:
        """Watch values of a sample against held-out windows; val_score (lower is better) =
        4-mer JS + |GC - held-out GC|."""
        gc, val_gc = float(M.gc_content(sample).mean()), float(M.gc_content(val).mean())
        js4 = M.kmer_js(sample, val, 4)
        return {"sample_gc": gc, "val_gc": val_gc, "unique_fraction": M.unique_fraction(sample),
                "morans_i": _nanmean(M.morans_i(sample)),
                "diversity": M.mean_pairwise_hamming(sample, max_n=200, seed=epoch),
                "val_js_4mer": js4, "val_score": js4 + abs(gc - val_gc)}

    def watch(self, row: dict) -> str:
        return "GC=%.3f (val %.3f) unique=%.3f JS4=%.4f" % (
            row["sample_gc"], row["val_gc"], row["unique_fraction"], row["val_js_4mer"])

    def summary(self, row: dict) -> str:
        return (f"last val 4-mer JS {row.get('val_js_4mer', float('nan')):.4f}, "
                f"GC {row.get('sample_gc', float('nan')):.3f}")

    def write_epoch_sample(self, run_dir: Path, epoch: int, sample, model: str) -> None:
        write_fasta(run_dir / "sequences" / f"epoch{epoch}.fasta", decode(sample), model=model,
                    prefix=f"epoch{epoch}")

    def prompt(self, text: str) -> torch.Tensor:
        return torch.from_numpy(encode_strict(text, where="--prompt").astype("int64"))

    def default_output(self, gen_output: str) -> Path:
        return Path(gen_output)

    def versus_data(self, codes, data_path, length: int) -> str:
        """One line comparing generated sequences with every window of a data file (gen --data)."""
        ref = load_sequences(data_path, length, val_fraction=0.0)
        gc_g, gc_r = float(M.gc_content(codes).mean()), float(M.gc_content(ref.train).mean())
        return (f"vs {data_path}: GC {gc_g:.3f} (data {gc_r:.3f}), 4-mer JS {M.kmer_js(codes, ref.train, 4):.4f}, "
                f"unique {M.unique_fraction(codes):.3f}, exact copies {M.exact_copies(codes, ref.train_segments)}")

    def write_generated(self, out, codes, *, model: str, checkpoint: str, temperature: float, labels=None) -> str:
        seqs = decode(codes)
        out = Path(out)
        files = {out: generated_fasta(seqs, model=model, checkpoint=checkpoint, temperature=temperature,
                                      labels=labels)}
        if out.suffix != ".txt":
            files[out.with_suffix(".txt")] = lines_text(seqs)  # the prototype's twin
        write_texts(files)  # both or neither
        return f"wrote {len(seqs)} sequences of {codes.shape[1]} bp to {' and '.join(map(str, files))}"


class Signal:
    kind = "signal"
    name = "real-valued"
    windows = False

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def stats(self, data) -> DataStats:
        return DataStats(seq_len=data.seq_len, base_freq=(0.25,) * 4, gc=float("nan"), kind=self.kind)

    def target_gc(self, requested, data) -> float:
        return float("nan")

    def monitor(self, sample, val, epoch: int) -> dict:
        """The same for real values; val_score = KS statistic + mean |autocorrelation difference|
        over lags 1-5."""
        from analysis import distributions as DS  # scipy.stats: imported for real-valued runs only

        ks, _ = DS.ks(sample, val)
        acf = float(np.nanmean(np.abs(DS.autocorrelation(sample) - DS.autocorrelation(val))))
        div = DS.diversity(sample, max_n=200, seed=epoch)
        return {"sample_mean": float(sample.mean()), "val_mean": float(val.mean()),
                "sample_std": float(sample.std()), "val_std": float(val.std()), "ks": ks,
                "wasserstein": DS.wasserstein(sample, val), "acf_mae": acf,
                "unique_fraction": div["unique_fraction"], "diversity": div["mean_pairwise_distance"],
                "val_score": ks + acf}

    def watch(self, row: dict) -> str:
        return "KS=%.3f W1=%.3f acf_mae=%.3f unique=%.3f" % (
            row["ks"], row["wasserstein"], row["acf_mae"], row["unique_fraction"])

    def summary(self, row: dict) -> str:
        return f"last KS {row['ks']:.3f}, Wasserstein {row['wasserstein']:.3f} vs held-out"

    def write_epoch_sample(self, run_dir: Path, epoch: int, sample, model: str) -> None:
        write_samples(run_dir / "sequences" / f"epoch{epoch}.txt", sample)

    def prompt(self, text: str) -> torch.Tensor:
        raise ConfigError("--prompt: this checkpoint generates real values, not DNA")

    def default_output(self, gen_output: str) -> Path:
        return Path(gen_output).with_name("final_samples.txt")  # the prototype's file name

    def versus_data(self, codes, data_path, length: int) -> str:
        return f"--data {data_path}: no DNA comparison for real-valued sequences (use analyse_distributions.py)"

    def write_generated(self, out, codes, *, model: str, checkpoint: str, temperature: float, labels=None) -> str:
        out = write_samples(out, codes)
        return f"wrote {codes.shape[0]} real-valued sequences of length {codes.shape[1]} to {out}"


MODALITIES = {m.kind: m for m in (DNA(), Signal())}


def of(kind: str):
    return MODALITIES[kind]


def load(d, seed: int):
    """(modality, data) for a DataConfig: the one place that decides DNA or real-valued (a text file
    whose lines are numbers)."""
    if d.select_apart and (d.synthetic or (isinstance(d.path, str) and is_signal_file(d.path))):
        raise ConfigError("data.select_apart deals held-out DNA blocks; it does not apply to "
                          + ("synthetic windows" if d.synthetic else f"{d.path}'s real-valued sequences"))
    if d.synthetic:
        return MODALITIES["dna"], synthetic_data(d.synthetic, d.seq_len, d.val_fraction, seed)
    if isinstance(d.path, str) and is_signal_file(d.path):
        return MODALITIES["signal"], load_signals(d.path, val_fraction=d.val_fraction)
    from utils.labels import LabelSource

    source = LabelSource(pattern=d.label_pattern or None, table=d.labels or None)
    data = load_sequences(d.path, d.seq_len, stride=d.stride, val_fraction=d.val_fraction,
                          block_size=d.block_size, max_sequences=d.max_sequences, seed=seed, crop=d.crop_records,
                          labels=source if (source.pattern or source.table) else None, select_apart=d.select_apart)
    return MODALITIES["dna"], data


def synthetic_data(n: int, seq_len: int, val_fraction: float, seed: int) -> SequenceData:
    """The masked-transformer devlog's sanity check: n uniformly random ACGT windows, nothing to
    learn beyond chance (25% masked accuracy)."""
    rng = np.random.default_rng(seed + 104729)
    x = rng.integers(0, 4, (n, seq_len), dtype=np.uint8)
    n_val = int(round(n * val_fraction))
    return SequenceData(train=x[n_val:], val=x[:n_val], train_segments=list(x[n_val:]),
                        val_segments=list(x[:n_val]), n_records=n, source=f"synthetic:{n}")
