"""Hand-made stored results (nothing trained): the JSON a run would write, and its RunResult."""

from __future__ import annotations

from typing import Any

from amst_bench.report.results import SCHEMA_VERSION, RunResult


def result_payload(variant="naive", dataset="synthetic", seed=0, acc=0.5, *, label="smoke", f1=None,
                   epoch_s=1.0, train_s=None, modality=None, finished=None, split="random-80/10/10",
                   device=None, profile="smoke", epochs=12) -> dict[str, Any]:
    """A result file's content in the current schema."""
    return {
        "schema": SCHEMA_VERSION,
        "run_id": f"{variant}__{dataset}__seed{seed}",
        "config_hash": "0" * 10,
        "method": variant.split("[")[0],
        "variant": variant,
        "method_config": {},
        "method_resolved": {},
        "dataset": dataset,
        "dataset_info": {},
        "dataset_options": {},
        "split": split,
        "seed": seed,
        "profile": profile,
        "protocol": {"epochs": epochs},
        "overrides": {},
        "protocol_label": label,
        "versions": {},
        "device": device or {"type": "cpu"},
        "determinism": {},
        "started": "2025-01-01T00:00:00+00:00",
        "finished": finished or f"2025-01-01T00:00:0{seed}+00:00",
        "curves": {"epoch_seconds": [epoch_s] * epochs},
        "best_epoch": 0,
        "best_val_acc": acc,
        "test": {"accuracy": acc, "macro_f1": acc if f1 is None else f1, "loss": 1.0,
                 "modality_accuracy": modality or {"audio": 0.6, "visual": 0.5}},
        "validation": None,
        "seconds_per_epoch": {"train": epoch_s if train_s is None else train_s, "epoch": epoch_s,
                              "epochs": epochs},
        "peak_memory_bytes": None,
        "embedding_dim": 512,
        "text_encoder": None,
    }


def make_result(*args, **kwargs) -> RunResult:
    """`result_payload` read through the schema, as the store would read the file."""
    return RunResult.from_json(result_payload(*args, **kwargs))
