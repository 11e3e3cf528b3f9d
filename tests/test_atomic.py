"""Atomic writes: a writer that fails half-way (disk full after some bytes, or the serialiser raising
mid-object) leaves the previous result or checkpoint intact and no temp file behind."""

from __future__ import annotations

import dataclasses
import errno
import os
import tempfile
import types
from pathlib import Path

import pytest
import torch

from amst_bench import atomic
from amst_bench.report.results import ResultStore, RunProgress
from tests.result_factory import make_result


class _FullHalfway:
    """A file that takes half of what it is given, then fails as a full disk does."""

    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.fh, name)


class _Fault:
    """Patches atomic's os and tempfile: once armed, the write of a temp file whose name ends with
    `suffix` takes half its bytes and fails; `written` lists the temp files that got bytes."""

    def __init__(self, monkeypatch):
        self.suffix: str | None = None
        self.written: list[Path] = []
        self._temp: dict[int, Path] = {}

        def mkstemp(*args, **kwargs):
            fd, name = tempfile.mkstemp(*args, **kwargs)
            self._temp[fd] = Path(name)
            return fd, name

        def fdopen(fd, *args, **kwargs):
            fh = os.fdopen(fd, *args, **kwargs)
            temp = self._temp.pop(fd, None)
            target = temp.name[1:].rsplit(".", 2)[0] if temp else ""  # .NAME.<random>.tmp -> NAME
            if self.suffix is None or temp is None or not target.endswith(self.suffix):
                return fh
            self.written.append(temp)
            return _FullHalfway(fh)

        monkeypatch.setattr(atomic, "os", types.SimpleNamespace(**{**vars(os), "fdopen": fdopen}))
        monkeypatch.setattr(atomic, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))

    def arm(self, suffix: str = "") -> None:
        """From now on, fail writes of files named *suffix (every file for "")."""
        self.suffix = suffix


@pytest.fixture
def fault(monkeypatch) -> _Fault:
    return _Fault(monkeypatch)


def _leftovers(folder: Path) -> list[str]:
    """Temp files (.NAME.<random>.tmp) or anything else hidden left in the folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def _stored(tmp_path) -> tuple[ResultStore, Path, bytes]:
    store = ResultStore(tmp_path)
    path = store.save_result(make_result("naive", acc=0.7))
    return store, path, path.read_bytes()


def test_result_write_failing_half_way_keeps_the_previous_file(tmp_path, fault):
    store, path, before = _stored(tmp_path)
    fault.arm()
    with pytest.raises(OSError, match="No space left"):
        store.save_result(make_result("naive", acc=0.9))
    assert [p.parent for p in fault.written] == [store.runs_dir]  # half of it went into a temp file
    assert path.read_bytes() == before
    assert _leftovers(store.runs_dir) == []
    assert [r.test.accuracy for r in store.load_results()] == [0.7]


def test_result_serialiser_raising_mid_object_keeps_the_previous_file(tmp_path, monkeypatch):
    store, path, before = _stored(tmp_path)

    class Unprintable:
        def __str__(self):
            raise RuntimeError("cannot serialise")

    new = make_result("naive", acc=0.9)
    payload = new.to_json() | {"versions": {"a": "1", "z": Unprintable()}}  # fails after "a" is encoded
    monkeypatch.setattr(type(new), "to_json", lambda self: payload)
    with pytest.raises(RuntimeError, match="cannot serialise"):
        store.save_result(new)
    assert path.read_bytes() == before
    assert _leftovers(store.runs_dir) == []


def _checkpointed(tmp_path):
    store = ResultStore(tmp_path)
    progress = RunProgress("run", "naive", "synthetic", 0, "smoke", 1, 4, 0.5)
    store.save_checkpoint("run", {"epoch": 0, "weights": torch.arange(8.0)}, progress)
    files = [store.checkpoint_path("run"), store.progress_path("run")]
    return store, progress, {p: p.read_bytes() for p in files}


def _newer_state():
    return {"epoch": 1, "weights": torch.zeros(1000)}


def test_checkpoint_write_failing_half_way_keeps_the_previous_one(tmp_path, fault):
    store, progress, before = _checkpointed(tmp_path)
    fault.arm(".pt")
    with pytest.raises(OSError, match="No space left"):
        store.save_checkpoint("run", _newer_state(), dataclasses.replace(progress, epochs_done=2))
    assert {p: p.read_bytes() for p in before} == before  # the state, and its record not yet touched
    assert _leftovers(store.checkpoints_dir) == []
    state = store.load_checkpoint("run")
    assert state["epoch"] == 0 and torch.equal(state["weights"], torch.arange(8.0))
    assert store.in_progress() == [progress]


def test_progress_record_write_failing_half_way_keeps_the_previous_record(tmp_path, fault):
    """The state is written first: if its record then fails, the state is the new, complete one and
    the record the previous one, so `status` under-reports by an epoch and resuming is unaffected."""
    store, progress, before = _checkpointed(tmp_path)
    fault.arm(".json")
    with pytest.raises(OSError, match="No space left"):
        store.save_checkpoint("run", _newer_state(), dataclasses.replace(progress, epochs_done=2))
    assert store.progress_path("run").read_bytes() == before[store.progress_path("run")]
    assert _leftovers(store.checkpoints_dir) == []
    assert store.in_progress() == [progress]
    assert store.load_checkpoint("run")["epoch"] == 1


def test_checkpoint_serialiser_raising_half_way_keeps_the_previous_one(tmp_path, monkeypatch):
    store, progress, before = _checkpointed(tmp_path)

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04" + b"\x00" * 64)  # some of the archive, then a failure
        raise RuntimeError("pickling failed")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="pickling failed"):
        store.save_checkpoint("run", _newer_state(), dataclasses.replace(progress, epochs_done=2))
    assert {p: p.read_bytes() for p in before} == before
    assert _leftovers(store.checkpoints_dir) == []


def test_a_failed_write_leaves_nothing_when_there_was_no_previous_file(tmp_path, fault):
    fault.arm()
    with pytest.raises(OSError, match="No space left"):
        atomic.atomic_write_json(tmp_path / "new.json", {"a": 1})
    assert len(fault.written) == 1 and list(tmp_path.iterdir()) == []


def test_written_files_get_the_mode_open_would_give_not_mkstemps_0600(tmp_path):
    from amst_bench import atomic
    from amst_bench.atomic import atomic_write_text

    atomic_write_text(tmp_path / "page.html", "<p>hi</p>")
    (tmp_path / "plain.html").write_text("<p>hi</p>")
    mode = (tmp_path / "page.html").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.html").stat().st_mode & 0o777 == atomic._FILE_MODE
    assert mode != 0o600  # this machine's umask is 022
