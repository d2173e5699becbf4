"""Write data/labelled_example.fasta: real DNA of three labels, each record's label in its header.

    python bench/make_labelled_example.py

phage  : Enterobacteria phage lambda (data/example_genome.fasta), all 48,502 bp in 10 kb records;
ecoli  : E. coli 536 (data/ecoli_536.fasta.gz), ten 10 kb stretches spread evenly over the genome;
ssuis  : Streptococcus suis SC84 (data/genomes/s_suis_sc84.fasta.gz, a Debian package's
         INSDC record: data/genomes/SOURCES.md), ten 10 kb stretches spread evenly.
Headers read `>ecoli_536:1234567-1244567 label=ecoli`, so `--data data/labelled_example.fasta`
trains on three labels with no other flag. Deterministic: the same file every run.
"""
from pathlib import Path

from common import ROOT

from utils.sequences import read_records

RECORD = 10_000
SOURCES = [("phage", "data/example_genome.fasta", "lambda", None),
           ("ecoli", "data/ecoli_536.fasta.gz", "ecoli_536", 10),
           ("ssuis", "data/genomes/s_suis_sc84.fasta.gz", "s_suis_sc84", 10)]


def stretches(seq: str, n: int | None):
    """(start, end) of n evenly spread RECORD-bp stretches, or of the whole sequence in RECORD-bp pieces."""
    if n is None:
        return [(s, min(s + RECORD, len(seq))) for s in range(0, len(seq), RECORD)]
    step = (len(seq) - RECORD) // (n - 1)
    return [(i * step, i * step + RECORD) for i in range(n)]


def main():
    lines = []
    for label, path, name, n in SOURCES:
        seq = max((s for _, s in read_records(ROOT / path)), key=len).upper()
        for a, b in stretches(seq, n):
            lines += [f">{name}:{a + 1}-{b} label={label}", *(seq[i : i + 70] for i in range(a, b, 70))]
    out = ROOT / "data" / "labelled_example.fasta"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({sum(1 for x in lines if x.startswith('>'))} records)")


if __name__ == "__main__":
    main()
