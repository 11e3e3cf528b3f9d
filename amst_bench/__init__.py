"""amst-bench: one protocol, many modality-imbalance methods, honest leaderboards."""

__version__ = "0.1.0"
