"""Test-session settings: every test trains tiny nets on the CPU, where one torch thread per
process is several times faster than two (and the suite runs one process per core)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
