"""Running experiments: the runner loop, `solve`, module imports, records, the run session, notifications."""
