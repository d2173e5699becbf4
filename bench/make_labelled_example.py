"""Write data/labelled_example.fasta: real DNA of three labels, each record's label in its header.

    python bench/make_labelled_example.py
    python bench/make_labelled_example.py --stretches 40 --out data/labelled_large.fasta.gz  # 400 kb a bacterium
    python bench/make_labelled_example.py --stretches 40 --phages lambda t4 t7 \
        --out data/labelled_phages.fasta.gz  # and 257 kb of three phages

phage  : Enterobacteria phage lambda (data/example_genome.fasta), all 48,502 bp in 10 kb records;
         with --phages, each phage named (lambda, t4: phage T4, 168,903 bp; t7: phage T7, 39,937 bp;
         data/genomes/SOURCES.md) whole, in 10 kb records, all under label=phage;
ecoli  : E. coli 536 (data/ecoli_536.fasta.gz), ten 10 kb stretches spread evenly over the genome;
ssuis  : Streptococcus suis SC84 (data/genomes/s_suis_sc84.fasta.gz, a Debian package's
         INSDC record: data/genomes/SOURCES.md), ten 10 kb stretches spread evenly.
Headers read `>ecoli_536:1234567-1244567 label=ecoli`, so `--data data/labelled_example.fasta`
trains on three labels with no other flag. Deterministic: the same file every run.
"""
import argparse
import gzip

from common import ROOT

from utils.sequences import read_records

RECORD = 10_000
PHAGES = {"lambda": ("data/example_genome.fasta", "lambda"),
          "t4": ("data/genomes/t4_phage.fasta.gz", "t4_phage"),
          "t7": ("data/genomes/t7_phage.fasta.gz", "t7_phage")}
BACTERIA = [("ecoli", "data/ecoli_536.fasta.gz", "ecoli_536", True),
           ("ssuis", "data/genomes/s_suis_sc84.fasta.gz", "s_suis_sc84", True)]


def stretches(seq: str, n: int | None):
    """(start, end) of n evenly spread RECORD-bp stretches, or of the whole sequence in RECORD-bp pieces."""
    if n is None:
        return [(s, min(s + RECORD, len(seq))) for s in range(0, len(seq), RECORD)]
    step = (len(seq) - RECORD) // (n - 1)
    return [(i * step, i * step + RECORD) for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stretches", type=int, default=10, help="10 kb stretches of each bacterium (lambda: all of it)")
    ap.add_argument("--phages", nargs="+", default=["lambda"], choices=sorted(PHAGES),
                    help="phage genomes of label=phage, each whole")
    ap.add_argument("--out", default="data/labelled_example.fasta", help="the FASTA written (.gz: gzipped)")
    args = ap.parse_args()
    lines = []
    sources = [("phage", *PHAGES[p], False) for p in dict.fromkeys(args.phages)] + BACTERIA
    for label, path, name, spread in sources:
        seq = max((s for _, s in read_records(ROOT / path)), key=len).upper()
        for a, b in stretches(seq, args.stretches if spread else None):
            lines += [f">{name}:{a + 1}-{b} label={label}", *(seq[i : min(i + 70, b)] for i in range(a, b, 70))]
    out = ROOT / args.out
    text = "\n".join(lines) + "\n"
    if out.suffix == ".gz":
        out.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        out.write_text(text)
    print(f"wrote {out} ({sum(1 for x in lines if x.startswith('>'))} records)")


if __name__ == "__main__":
    main()
