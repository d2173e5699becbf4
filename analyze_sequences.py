#!/usr/bin/env python
"""Analyze generated sequences against real data: the same code as `main.py --mode analyze`.

    python analyze_sequences.py --generated outputs/generated.fasta --data data/example_genome.fasta
"""
import sys

from main import main

if __name__ == "__main__":
    sys.exit(main(["--mode", "analyze", *sys.argv[1:]]))
