#!/usr/bin/env python3
"""Filter YAML logs (see README.md)."""
import sys

try:
    from cool_runner.cli.filter import main
except KeyboardInterrupt:  # Ctrl-C while Python is still loading cool-runner: nothing has started yet
    print("filter.py: stopped", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
