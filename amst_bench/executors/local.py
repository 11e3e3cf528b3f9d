"""`--executor local` (the default): the runner's in-process loop, one run after another."""

from __future__ import annotations

from amst_bench.executors import NO_TRACKING
from amst_bench.runner import GridOutcome, execute


class LocalExecutor:
    name = "local"

    def execute(self, specs, store, reporter, force, strict, locations, tracking=NO_TRACKING) -> GridOutcome:
        return execute(specs, store, reporter, force=force, strict=strict, locations=locations)
