"""amst-bench: one protocol, many modality-imbalance methods, honest leaderboards."""

from amst_bench import source_tree

__version__ = "0.1.0"

source_tree.install()  # plugins found from an uninstalled checkout too (PYTHONPATH=<checkout>)
