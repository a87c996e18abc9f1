#!/usr/bin/env python3
"""Filter YAML logs (see README.md)."""
import sys

from cool_runner.cli.filter import main

if __name__ == "__main__":
    sys.exit(main())
