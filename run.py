#!/usr/bin/env python3
"""Run the experiments of an experiment file (see README.md)."""
import sys

from cool_runner.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
