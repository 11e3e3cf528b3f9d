"""Hand-made published results for the site's tests (tests/test_site.py, tests/test_site_browser.py):
a few method variants on two datasets under 'smoke' (CPU) and two timed runs under 'bench' (GPU)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from tests.result_factory import result_payload

ACC = {  # (label, variant, dataset) -> accuracy per seed
    ("smoke", "naive", "synthetic"): [0.70, 0.72, 0.75],
    ("smoke", "amst-alt", "synthetic"): [0.80, 0.83, 0.81],
    ("smoke", "amst-alt[skip_enabled=False]", "synthetic"): [0.78, 0.76],
    ("smoke", "my-method", "synthetic"): [0.60],
    ("smoke", "naive", "cremad"): [0.55, 0.58, 0.61],
    ("smoke", "amst-alt", "cremad"): [0.66, 0.69, 0.64],
}
FAMILIES = {
    "naive": "joint",
    "amst-alt": "alternating",
    "audio": "unimodal",
    "visual": "unimodal",
    "text": "unimodal",
    "ogm-ge": "gradient modulation",
    "pmr": "objective",
    "mslr": "learning rate",
    "mla": "alternating",
    "amst-joint": "alternating",
    "amst-full": "alternating",
}


def family_of(method: str) -> str:
    return FAMILIES[method]  # a KeyError (an unknown method) must become "other"


def payload(label, variant, dataset, seed, acc):
    p = result_payload(
        variant,
        dataset,
        seed,
        acc,
        label=label,
        f1=acc - 0.01 * seed,
        epoch_s=1.0 + 0.1 * seed,
        train_s=0.5 + 0.05 * seed,
        modality={"audio": acc - 0.1, "visual": acc - 0.2 + 0.01 * seed},
        epochs=4,
    )
    p["test"].update(
        shapley={"audio": 0.2 + 0.01 * seed, "visual": 0.1},
        shapley_imbalance=0.3 + 0.1 * seed,
        utilisation={"audio": 0.5, "visual": 0.25 + 0.01 * seed},
    )
    p["curves"].update(
        epoch=[0, 1, 2, 3],
        val_acc=[0.3, 0.5, acc, acc - 0.01],
        train_loss=[2.0, 1.5, 1.2, 1.1],
        val_modality_acc={"audio": [0.2, 0.3, 0.4, 0.4], "visual": [0.1, 0.2, 0.2, 0.3]},
    )
    p["best_epoch"] = 2
    p["run_id"] = f"{variant}__{dataset}__seed{seed}__{label}"
    return p


def write_tree(root: Path) -> Path:
    """A published tree under root: the runs of ACC, and GPU timings of naive and amst-alt ('bench')."""
    runs = root / "runs"
    runs.mkdir(parents=True)
    for (label, variant, dataset), accs in ACC.items():
        for seed, acc in enumerate(accs):
            p = payload(label, variant, dataset, seed, acc)
            (runs / f"{p['run_id']}.json").write_text(json.dumps(p, indent=1))
    for variant, secs in (("naive", 2.0), ("amst-alt", 1.5)):
        p = payload("bench", variant, "synthetic", 0, 0.3)
        p.update(profile="bench", device={"type": "cuda", "name": "NVIDIA H100"})
        p["seconds_per_epoch"].update(epoch=secs, train=secs / 2)
        (runs / f"{p['run_id']}.json").write_text(json.dumps(p, indent=1))
    return root


def by_hand(values: list[float], digits: int = 1) -> str:
    """ "72.3 ± 1.45 (n=3)" from raw values, computed here independently of the harness."""
    text = f"{statistics.mean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values) / math.sqrt(len(values)):.2f}"
    return f"{text} (n={len(values)})"
