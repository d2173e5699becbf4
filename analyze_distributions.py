#!/usr/bin/env python
"""analyse_distributions.py under the American spelling (same options, same outputs)."""
import sys

from analyse_distributions import main

if __name__ == "__main__":
    sys.exit(main())
