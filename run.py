#!/usr/bin/env python3
"""Run the experiments of an experiment file (see README.md)."""
import sys

from cool_runner.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main())
