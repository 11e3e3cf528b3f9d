"""Method plugins, installed as `amst_bench.methods`; one file per method, each registers itself."""
