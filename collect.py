#!/usr/bin/env python3
"""Collect YAML logs (see README.md)."""
import sys

from cool_runner.cli.collect import main

if __name__ == "__main__":
    sys.exit(main())
