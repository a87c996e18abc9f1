"""The study file: loading, the experiment mapping, expressions, and expansion into experiments."""
