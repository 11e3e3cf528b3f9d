"""The results store: one JSON per (method variant, dataset, seed, config hash), written atomically.

Layout under the results folder:
  runs/<run_id>.json          finished runs (the only thing leaderboards read)
  checkpoints/<run_id>.pt     the state of an unfinished run, for resuming; removed when it ends
  checkpoints/<run_id>.json   what that run is and how far it got (read by `amst-bench status`)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from amst_bench.atomic import atomic_torch_save, atomic_write_json
from amst_bench.errors import UserError

SCHEMA_VERSION = 1


class ResultStore:
    """Finished results and in-flight checkpoints under one root folder."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def ensure_writable(self) -> None:
        """Fail early, with the folder named, when results cannot be written there."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.runs_dir, delete=True)
            probe.close()
        except OSError as exc:
            raise UserError(f"--results-dir {self.root}: not writable ({exc.strerror or exc})") from None

    def result_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.checkpoints_dir / f"{run_id}.pt"

    def has_result(self, run_id: str) -> bool:
        return self.result_path(run_id).is_file()

    def save_result(self, result: dict[str, Any]) -> Path:
        path = self.result_path(result["run_id"])
        atomic_write_json(path, result)
        return path

    def save_checkpoint(
        self, run_id: str, state: dict[str, Any], progress: dict[str, Any] | None = None
    ) -> None:
        atomic_torch_save(self.checkpoint_path(run_id), state)
        if progress is not None:
            atomic_write_json(self.checkpoint_path(run_id).with_suffix(".json"), progress)

    def in_progress(self) -> list[dict[str, Any]]:
        """The progress records of interrupted (or running) runs."""
        if not self.checkpoints_dir.is_dir():
            return []
        records = []
        for path in sorted(self.checkpoints_dir.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # written atomically: only a foreign file can be unreadable
        return records

    def load_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        path = self.checkpoint_path(run_id)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception:
            # A checkpoint is only ever replaced atomically, so this is foreign damage: start over
            # rather than trust it, and keep the file for inspection.
            path.rename(path.with_suffix(".pt.corrupt"))
            return None

    def drop_checkpoint(self, run_id: str) -> None:
        self.checkpoint_path(run_id).unlink(missing_ok=True)
        self.checkpoint_path(run_id).with_suffix(".json").unlink(missing_ok=True)

    def load_results(self) -> list[dict[str, Any]]:
        """Every finished result; unreadable files are a clear error naming the file."""
        if not self.runs_dir.is_dir():
            return []
        results = []
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                payload = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(f"{path}: not a readable result file ({exc})") from None
            if payload.get("schema") != SCHEMA_VERSION:
                raise UserError(f"{path}: result schema {payload.get('schema')!r}, expected {SCHEMA_VERSION}")
            results.append(payload)
        return results
