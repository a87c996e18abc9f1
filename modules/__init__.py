"""Experiment modules shipped with cool-runner; each has a main(exp) function."""
