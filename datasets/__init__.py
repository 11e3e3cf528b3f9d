"""Dataset adapters, installed as `amst_bench.datasets`; each registers itself by name."""
