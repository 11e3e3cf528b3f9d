"""The AMST paper's reported numbers (Tables 1-3), as plain data.

These are the numbers printed in the paper, typed in from its tables: they were never measured
by this harness. Leaderboards show them only in sections labelled as the paper's, never inside a
measured table. Missing entries ("–" in the paper) are simply absent.

Keys use our names: datasets cremad, ave, mvsa, iemocap, urfunny; methods as registered
(the paper's OGM-GE, called OGM in Table 3, is ``ogm-ge``; Naïve is ``naive``). Table 2's experiments
are also the ablation grid: which variant runs each one here is declared once, below.
"""

from __future__ import annotations

from dataclasses import dataclass

from amst_bench.options import variant_name

# Paper name -> our name.
PAPER_DATASET_NAMES = {
    "CREMA-D": "cremad",
    "AVE": "ave",
    "MVSA": "mvsa",
    "IEMOCAP": "iemocap",
    "UR-FUNNY": "urfunny",
}
PAPER_METHOD_NAMES = {
    "Audio": "audio",
    "Visual": "visual",
    "Text": "text",
    "Naïve": "naive",
    "OGM-GE": "ogm-ge",
    "OGM": "ogm-ge",
    "PMR": "pmr",
    "MSLR": "mslr",
    "MLA": "mla",
    "AMST-Alt": "amst-alt",
    "AMST-Joint": "amst-joint",
    "AMST-Full": "amst-full",
}

# Column order of the paper's tables.
DATASETS = ("cremad", "ave", "mvsa", "iemocap", "urfunny")


def _row(*cells):
    """One table row in DATASETS order; None marks the paper's '–'."""
    return {d: c for d, c in zip(DATASETS, cells, strict=True) if c is not None}


# Table 1: test accuracy (%), mean over 3 seeds and its standard error: method -> dataset -> (mean, se).
TABLE1_ACCURACY: dict[str, dict[str, tuple[float, float]]] = {
    "audio": _row((59.1, 0.49), (55.3, 0.56), None, (49.2, 1.41), (59.7, 0.64)),
    "visual": _row((60.5, 0.75), (28.5, 0.64), (57.7, 1.21), (46.5, 0.53), (49.2, 0.78)),
    "text": _row(None, None, (70.8, 0.10), (62.3, 0.30), (68.9, 0.05)),
    "naive": _row((62.9, 1.24), (55.9, 0.46), (71.1, 0.10), (67.3, 1.20), (70.0, 0.26)),
    "ogm-ge": _row((65.5, 1.46), (56.1, 1.24), (72.7, 0.55), (67.5, 0.44), (70.3, 0.38)),
    "pmr": _row((67.5, 1.65), (58.8, 1.55), (73.6, 0.20), None, None),
    "mslr": _row((71.6, 0.82), (61.1, 0.70), (71.0, 0.10), (61.1, 0.70), (69.0, 0.58)),
    "mla": _row((74.8, 0.30), (61.9, 0.44), (71.8, 0.10), (63.9, 0.62), (65.6, 0.24)),
    "amst-alt": _row((79.0, 0.55), (62.1, 0.76), (72.5, 0.31), (67.5, 0.20), (70.8, 0.34)),
    "amst-joint": _row((78.2, 0.03), (63.2, 0.46), (72.5, 0.79), (67.6, 0.99), (72.1, 0.46)),
    "amst-full": _row((80.5, 0.77), (65.8, 0.38), (72.6, 0.43), (68.4, 0.54), (71.6, 0.13)),
}

@dataclass(frozen=True)
class AblationExperiment:
    """One row of the paper's Table 2 (which AMST parts it has) and the method variant that runs it
    here: `method` with `options` changed from their defaults."""

    alt: bool
    joint: bool
    skip: bool
    method: str
    options: tuple[tuple[str, bool | int | float | str], ...] = ()

    @property
    def variant(self) -> str:
        """The name its runs are stored and shown under (as RunSpec.variant spells it)."""
        return variant_name(self.method, dict(self.options))

    @property
    def set_options(self) -> dict[str, str]:
        """The options as `--set METHOD.KEY=VALUE` would give them, for planning the runs."""
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.options}


_NO_SKIP = (("skip_enabled", False),)

# The ablation grid, declared once: `amst-bench ablation` runs these variants and ablation.md shows
# their rows, in this order. Table 2's experiment number -> experiment.
ABLATION_EXPERIMENTS: dict[int, AblationExperiment] = {
    1: AblationExperiment(alt=False, joint=True, skip=False, method="amst-joint", options=_NO_SKIP),
    2: AblationExperiment(alt=False, joint=True, skip=True, method="amst-joint"),
    3: AblationExperiment(alt=True, joint=False, skip=False, method="amst-alt", options=_NO_SKIP),
    4: AblationExperiment(alt=True, joint=False, skip=True, method="amst-alt"),
    5: AblationExperiment(alt=True, joint=True, skip=False, method="amst-full", options=_NO_SKIP),
    6: AblationExperiment(alt=True, joint=True, skip=True, method="amst-full"),
}


def ablation_variants() -> list[tuple[str, dict[str, str]]]:
    """What `amst-bench ablation` plans: (method, --set options) per experiment, in Table 2's order."""
    return [(e.method, e.set_options) for e in ABLATION_EXPERIMENTS.values()]

# Table 2: ablation accuracy (%), mean and SE over 3 seeds: exp -> dataset -> (mean, se).
TABLE2_ABLATION: dict[int, dict[str, tuple[float, float]]] = {
    1: _row((64.0, 1.45), (59.6, 1.76), (71.7, 0.90), (65.3, 0.35), (68.3, 0.25)),
    2: _row((78.2, 0.03), (63.2, 0.46), (72.5, 0.79), (67.6, 0.99), (72.1, 0.46)),
    3: _row((74.8, 0.35), (61.9, 1.13), (71.0, 0.93), (65.5, 1.69), (66.1, 0.53)),
    4: _row((79.0, 0.55), (62.1, 0.76), (72.5, 0.31), (67.5, 0.20), (70.8, 0.34)),
    5: _row((75.9, 1.39), (64.3, 0.58), (72.6, 0.07), (67.7, 1.27), (68.4, 0.21)),
    6: _row((80.5, 0.77), (65.8, 0.38), (72.6, 0.43), (68.4, 0.54), (71.6, 0.13)),
}

# Table 3: seconds per training epoch on an A100 (the official code's whole-epoch time), averaged over
# 100 epochs: method -> dataset -> seconds. The paper's (+x%) notes are derivable: (naive - x) / naive.
TABLE3_SECONDS_A100: dict[str, dict[str, float]] = {
    "naive": _row(20.3, 14.2, 27.3, 36.9, 53.0),
    "mslr": _row(20.3, 14.2, 27.3, 37.7, 53.3),
    "ogm-ge": _row(20.9, 15.0, 28.0, 37.8, 54.5),
    "pmr": _row(41.0, 65.0, 34.2, None, None),
    "mla": _row(20.8, 16.5, 27.4, 37.6, 52.8),
    "amst-alt": _row(15.4, 12.4, 16.9, 26.1, 34.1),
    "amst-joint": _row(14.7, 12.2, 17.0, 25.4, 33.9),
    "amst-full": _row(25.1, 17.1, 32.0, 45.7, 63.6),
}
