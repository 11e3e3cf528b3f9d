"""The one training loop: epochs, batches, probes, validation-based selection, timings, resume.

Methods override hooks (see amst_bench.train.method); the loop itself is the same for every method, so
timings and selection are comparable. Seconds per epoch are measured with the device synchronised
and stored twice per epoch: training only, and the whole epoch with validation (+ test when it
runs: when validation improves, or every epoch for methods whose official script does so), which
is what the paper's Table 3 reports.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from typing import Protocol as TypingProtocol

import torch
import torch.nn.functional as F

from amst_bench.data.tensors import Batch, DatasetBundle, TensorSplit, iterate_batches
from amst_bench.protocol import Protocol
from amst_bench.report.balance import balance, majority_rate, subsets
from amst_bench.report.metrics import Evaluation, accuracy, class_means, macro_f1, prediction_entropy
from amst_bench.report.results import SCHEMA_VERSION, ResultStore, RunProgress, RunResult
from amst_bench.report.tracking import EpochRecord
from amst_bench.train.environment import (
    determinism_record,
    device_record,
    resolve_device,
    seed_everything,
    synchronize,
    tf32,
    versions,
)
from amst_bench.train.memory import peak_rss_bytes, reset_peak_rss
from amst_bench.train.method import Method, MethodContext
from amst_bench.train.models import Probes, build_encoder
from amst_bench.train.runspec import RunSpec, protocol_label
from amst_bench.train.speed import (
    apply_backend_flags,
    channels_last_inputs,
    channels_last_module,
    speed_up_run,
)


class EpochReporter(TypingProtocol):
    def start_run(self, spec: RunSpec, epochs: int, first_epoch: int) -> None: ...
    def log_epoch(self, record: EpochRecord) -> None: ...  # every number of the epoch (trackers)
    def end_epoch(self, epoch: int, train_loss: float, val_acc: float, best_val: float) -> None: ...
    def end_run(self, result: RunResult) -> None: ...
    def skipped(self, spec: RunSpec) -> None: ...
    def busy(self, spec: RunSpec) -> None: ...
    def unsupported(self, spec: RunSpec, reason: str) -> None: ...


class SilentReporter:
    def start_run(self, spec, epochs, first_epoch):
        pass

    def log_epoch(self, record):
        pass

    def end_epoch(self, epoch, train_loss, val_acc, best_val):
        pass

    def end_run(self, result):
        pass

    def skipped(self, spec):
        pass

    def busy(self, spec):
        pass

    def unsupported(self, spec, reason):
        pass


@dataclass
class History:
    """Per-epoch curves; everything a result needs to be re-plotted."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float | None] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    val_modality_acc: dict[str, list[float | None]] = field(default_factory=dict)
    val_head_modality_acc: dict[str, list[float | None]] = field(default_factory=dict)
    # Validation Shapley value per modality and Shapley imbalance (None where not measured).
    val_shapley: dict[str, list[float | None]] = field(default_factory=dict)
    val_shapley_imbalance: list[float | None] = field(default_factory=list)
    test_acc: list[float | None] = field(default_factory=list)
    trained_modalities: list[list[str]] = field(default_factory=list)
    # Per optimiser ("name", or "name.i" for its i-th param group): the rate the epoch trained at.
    learning_rates: dict[str, list[float | None]] = field(default_factory=dict)
    train_seconds: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    # Process CPU seconds of each epoch's training (time.process_time, all threads): on a CPU the
    # steadier figure on a shared machine, where wall time also counts other jobs' turns.
    train_cpu_seconds: list[float | None] = field(default_factory=list)


@dataclass
class RunState:
    """Everything one run carries from epoch to epoch, and what a checkpoint saves of it."""

    protocol: Protocol
    method: Method
    probes: Probes
    probe_opt: torch.optim.Optimizer
    probe_sched: torch.optim.lr_scheduler.LRScheduler
    shuffle: torch.Generator
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    history: History = field(default_factory=History)
    best: dict[str, Any] = field(
        default_factory=lambda: {"epoch": -1, "val_acc": -1.0, "test": None, "val": None}
    )
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    first_epoch: int = 0

    def checkpoint(self, epoch: int, device: torch.device) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "method": self.method.state_dict(),
            "probes": self.probes.state_dict(),
            "probe_opt": self.probe_opt.state_dict(),
            "probe_sched": self.probe_sched.state_dict(),
            "shuffle_rng": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "history": dataclasses.asdict(self.history),
            "best": self.best,
            "started": self.started,
        }

    def restore(self, checkpoint: dict[str, Any], device: torch.device) -> None:
        self.method.load_state_dict(checkpoint["method"])
        self.probes.load_state_dict(checkpoint["probes"])
        self.probe_opt.load_state_dict(checkpoint["probe_opt"])
        self.probe_sched.load_state_dict(checkpoint["probe_sched"])
        self.shuffle.set_state(checkpoint["shuffle_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if device.type == "cuda" and checkpoint.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(checkpoint["cuda_rng"], device)
        self.history = History(**checkpoint["history"])
        self.best = checkpoint["best"]
        self.started = checkpoint["started"]
        self.first_epoch = checkpoint["epoch"] + 1


def effective_protocol(protocol: Protocol, bundle: DatasetBundle) -> Protocol:
    """With the paper's encoders on a text dataset every embedding has RoBERTa's width (768), as
    in the official code, where ResNet outputs are projected to it."""
    if "text" in bundle.modalities and protocol.encoder == "resnet18":
        from amst_bench.data.text import text_hidden_size

        return dataclasses.replace(protocol, embedding_dim=text_hidden_size(protocol.text_model))
    return protocol


def encoder_factory(bundle: DatasetBundle, protocol: Protocol):
    """Builds the protocol's encoder for a modality of this dataset (channels-last when the protocol
    asks); `make.made` lists every (modality, encoder) built, for torch.compile."""

    def make(modality: str, embedding_dim: int | None = None) -> torch.nn.Module:
        encoder = build_encoder(
            modality,
            protocol.encoder,
            protocol.embedding_dim if embedding_dim is None else embedding_dim,
            bundle.input_shapes[modality],
            vocab_size=int(bundle.info.get("text_vocab_size", 0)),
            text_model=protocol.text_model,
            text_trainable_layers=protocol.text_trainable_layers,
        )
        if protocol.channels_last:
            channels_last_module(encoder)
        make.made.append((modality, encoder))
        return encoder

    make.made = []
    return make


class Trainer:
    """Trains one run (method × dataset × seed) and returns its result record."""

    def __init__(
        self,
        spec: RunSpec,
        bundle: DatasetBundle,
        store: ResultStore,
        reporter: EpochReporter | None = None,
        checkpoint_every: int = 1,
    ):
        self.spec = spec
        self.bundle = bundle
        self.store = store
        self.reporter = reporter or SilentReporter()
        self.checkpoint_every = checkpoint_every
        self.device = resolve_device(spec.protocol.device)

    # ------------------------------------------------------------------ evaluation

    def memory_layout(self, batch: Batch) -> Batch:
        """Image inputs channels-last when the protocol asks (the encoders' weights are already)."""
        if not self.spec.protocol.channels_last:
            return batch
        return Batch(channels_last_inputs(batch.inputs), batch.labels)

    def autocast(self):
        """bfloat16 autocast when the protocol asks for it; a no-op context otherwise."""
        enabled = self.spec.protocol.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def evaluate(self, method, probes: Probes, split: TensorSplit) -> Evaluation:
        method.model.eval()
        probes.eval()
        preds, labels, losses = [], [], []
        probe_hits: dict[str, torch.Tensor] = {}
        head_hits: dict[str, torch.Tensor] = {}
        entropies: dict[str, list[torch.Tensor]] = {}
        entropy_source = ""
        # v(S) for the balance metrics: hits of the method's fusion restricted to each subset, from
        # the same forward pass; dropped (None) when the method has no subset rule.
        subset_hits: dict[frozenset[str], torch.Tensor] | None = {}
        nonempty = [s for s in subsets(method.modalities) if s]

        def count(hits: dict[str, torch.Tensor], logits: dict[str, torch.Tensor], target):
            for m, lg in logits.items():
                hits[m] = hits.get(m, 0) + (lg.argmax(1) == target).sum()

        for batch in iterate_batches(split, self.spec.protocol.batch_size, prepare=self.bundle.prepare):
            batch = self.memory_layout(batch)
            with self.autocast():
                pred = method.predict(batch.inputs)
                probe_logits = probes(pred.embeddings)
            losses.append(F.cross_entropy(pred.logits, batch.labels, reduction="sum"))
            preds.append(pred.logits.argmax(1))
            labels.append(batch.labels)
            count(probe_hits, probe_logits, batch.labels)
            count(head_hits, pred.modality_logits, batch.labels)
            entropy_source = "head" if pred.modality_logits else "probe"
            for m, lg in (pred.modality_logits or probe_logits).items():
                entropies.setdefault(m, []).append(prediction_entropy(lg))
            for s in nonempty if subset_hits is not None else ():
                subset = method.subset_logits(pred, s)
                if subset is None:
                    subset_hits = None
                    break
                subset_hits[s] = subset_hits.get(s, 0) + (subset.argmax(1) == batch.labels).sum()
        pred_t, label_t = torch.cat(preds), torch.cat(labels)
        n = len(label_t)
        probe_accuracy = {m: float(c.item()) / n for m, c in sorted(probe_hits.items())}
        balance_fields: dict[str, Any] = {}
        if subset_hits:
            values = {s: float(c.item()) / n for s, c in subset_hits.items()}
            values[frozenset()] = majority_rate(label_t, self.bundle.num_classes)
            balance_fields = dataclasses.asdict(balance(values, method.modalities))
        return Evaluation(
            accuracy=accuracy(pred_t, label_t),
            macro_f1=macro_f1(pred_t, label_t, self.bundle.num_classes),
            loss=float(torch.stack(losses).sum().item() / n),
            modality_accuracy=probe_accuracy,
            head_modality_accuracy={m: float(c.item()) / n for m, c in sorted(head_hits.items())},
            class_entropy={
                m: class_means(torch.cat(v), label_t, self.bundle.num_classes)
                for m, v in sorted(entropies.items())
            },
            entropy_source=entropy_source,
            imbalance_gap=max(probe_accuracy.values()) - min(probe_accuracy.values())
            if probe_accuracy
            else None,
            **balance_fields,
        )

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        forced = True if self.spec.protocol.tf32 else self.spec.method_cls.tf32
        with tf32(forced):  # None: torch's defaults; restored afterwards
            return self._run()

    def _run(self) -> dict[str, Any]:
        state = self._start()
        for epoch in range(state.first_epoch, state.protocol.epochs):
            self._epoch(state, epoch)
            last = epoch == state.protocol.epochs - 1
            if not last and (epoch + 1) % self.checkpoint_every == 0:
                self.store.save_checkpoint(
                    self.spec.run_id, state.checkpoint(epoch, self.device), self._progress(state, epoch)
                )
        result = self._result(state.method, state.history, state.best, state.started, self.device)
        self.store.save_result(result)
        self.store.drop_checkpoint(self.spec.run_id)
        self.reporter.end_run(result)
        return result.to_json()

    def _progress(self, state: RunState, epoch: int) -> RunProgress:
        spec = self.spec
        return RunProgress(
            run_id=spec.run_id,
            variant=spec.variant,
            dataset=spec.dataset,
            seed=spec.seed,
            protocol_label=protocol_label(spec.protocol, spec.overrides),
            epochs_done=epoch + 1,
            epochs=state.protocol.epochs,
            best_val_acc=state.best["val_acc"],
        )

    def _start(self) -> RunState:
        """Seed, build the method and probes, and restore a checkpoint if the run was cut short."""
        spec, device = self.spec, self.device
        protocol = effective_protocol(spec.protocol, self.bundle)
        seed_everything(spec.seed)
        apply_backend_flags(protocol)  # cudnn_benchmark (after seeding, which turns it off)
        train, val, test = (s.to(device) for s in (self.bundle.train, self.bundle.val, self.bundle.test))
        make_encoder = encoder_factory(self.bundle, protocol)
        ctx = MethodContext(self.bundle, protocol, device, make_encoder, train=train)
        method = spec.method_cls(spec.method_config, ctx)
        self.embedding_dim = method.embedding_dim
        # The user's --set test_every_epoch wins; else the method's default (the official MLA and
        # unimodal scripts test every epoch), or the profile's setting.
        self.test_every_epoch = (
            protocol.test_every_epoch
            if "test_every_epoch" in spec.overrides
            else protocol.test_every_epoch or method.test_every_epoch_default
        )
        probes = Probes(method.modalities, method.embedding_dim, self.bundle.num_classes).to(device)
        probe_opt = method.sgd(probes.parameters())
        self.speed_record = speed_up_run(  # fused optimisers, torch.compile: what ran is recorded
            protocol, device, [*method.optimizers.values(), probe_opt], make_encoder.made,
            lambda: next(iterate_batches(train, protocol.batch_size, prepare=self.bundle.prepare)).inputs,
        )
        state = RunState(
            protocol=protocol,
            method=method,
            probes=probes,
            probe_opt=probe_opt,
            probe_sched=torch.optim.lr_scheduler.StepLR(
                probe_opt, protocol.optimizer.lr_step, protocol.optimizer.lr_gamma
            ),
            shuffle=torch.Generator().manual_seed(spec.seed),
            train=train,
            val=val,
            test=test,
        )
        checkpoint = self.store.load_checkpoint(spec.run_id)
        if checkpoint is not None:
            try:
                state.restore(checkpoint, device)
            except Exception as exc:  # another code version's or config's state: it cannot resume
                first = (str(exc).splitlines() or [""])[0].rstrip(":")
                reason = f"does not load into this run ({type(exc).__name__}: {first})"
                self.store.discard_checkpoint(spec.run_id, reason, ".stale")
                return self._start()  # from scratch, exactly as a first start (re-seeded)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            reset_peak_rss()  # peak host memory of this run (memory.py)
        self.reporter.start_run(spec, protocol.epochs, state.first_epoch)
        return state

    def _epoch(self, state: RunState, epoch: int) -> None:
        """One epoch: train (method + probes), validate, test when validation improves; timed."""
        method, probes, protocol, device = state.method, state.probes, state.protocol, self.device
        synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        method.model.train()
        probes.train()
        with self.autocast():
            method.on_train_epoch_start(epoch)
        trained = method.trained_modalities(epoch)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        counted = 0
        train_split = method.training_split(epoch, state.train)  # resampled by data-level methods
        batches = iterate_batches(
            train_split, protocol.batch_size, state.shuffle, prepare=self.bundle.prepare, train=True
        )
        steps = 0
        for batch in islice(batches, protocol.max_train_steps or None):  # --steps caps an epoch
            batch = self.memory_layout(batch)
            steps += 1
            with self.autocast():
                out = method.training_step(batch, epoch)
                probe_logits = probes(out.embeddings)
            loss_sum += out.loss.detach()
            if out.logits is not None:
                correct += (out.logits.detach().argmax(1) == batch.labels).sum()
                counted += len(batch)
            if probe_logits:
                probe_loss = sum(F.cross_entropy(lg.float(), batch.labels) for lg in probe_logits.values())
                Method.step([state.probe_opt], probe_loss)
        rates = learning_rates(method.optimizers)  # before the epoch's end hooks and schedulers move them
        method.on_train_epoch_end(epoch)
        for scheduler in [*method.schedulers.values(), state.probe_sched]:
            scheduler.step()
        synchronize(device)
        t_train, c_train = time.perf_counter(), time.process_time()

        val_eval = self.evaluate(method, probes, state.val)
        method.on_validation_end(epoch, val_eval)
        improved = val_eval.accuracy > state.best["val_acc"]
        test_eval = None
        if improved or self.test_every_epoch:
            test_eval = self.evaluate(method, probes, state.test)
        if improved:
            state.best = {
                "epoch": epoch,
                "val_acc": val_eval.accuracy,
                "test": dataclasses.asdict(test_eval),
                "val": dataclasses.asdict(val_eval),
            }
        synchronize(device)
        t_end = time.perf_counter()

        history = state.history
        history.epoch.append(epoch)
        history.train_loss.append(float(loss_sum.item()) / max(steps, 1))
        history.train_acc.append(float(correct.item()) / counted if counted else None)
        history.val_acc.append(val_eval.accuracy)
        history.val_macro_f1.append(val_eval.macro_f1)
        for m in method.modalities:
            history.val_modality_acc.setdefault(m, []).append(val_eval.modality_accuracy.get(m))
            if val_eval.head_modality_accuracy:
                history.val_head_modality_acc.setdefault(m, []).append(val_eval.head_modality_accuracy.get(m))
        before = len(history.epoch) - 1  # epochs already recorded (a run resumed from older code: fewer)
        if val_eval.shapley:
            for m in method.modalities:
                history.val_shapley.setdefault(m, [None] * before).append(val_eval.shapley.get(m))
        history.val_shapley_imbalance[:] = _padded(history.val_shapley_imbalance, before)
        history.val_shapley_imbalance.append(val_eval.shapley_imbalance)
        history.test_acc.append(test_eval.accuracy if test_eval else None)
        history.trained_modalities.append(list(trained))
        history.train_seconds.append(t_train - t0)
        history.epoch_seconds.append(t_end - t0)
        history.train_cpu_seconds[:] = _padded(history.train_cpu_seconds, before)
        history.train_cpu_seconds.append(c_train - c0)
        for name, rate in rates.items():
            history.learning_rates.setdefault(name, [None] * before).append(rate)
        self.reporter.log_epoch(_epoch_record(history, val_eval, method.modalities, rates))
        self.reporter.end_epoch(epoch, history.train_loss[-1], val_eval.accuracy, state.best["val_acc"])

    # ------------------------------------------------------------------ the record

    def _result(self, method, history: History, best, started: str, device) -> RunResult:
        spec = self.spec
        n = len(history.epoch_seconds)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
        return RunResult.from_json({  # checked against the schema, so readers never refuse it
            "schema": SCHEMA_VERSION,
            "run_id": spec.run_id,
            "config_hash": spec.config_hash,
            "method": spec.method,
            "variant": spec.variant,
            "method_config": dataclasses.asdict(spec.method_config),
            "method_resolved": method.resolved_options() | {"test_every_epoch": self.test_every_epoch},
            "dataset": spec.dataset,
            "dataset_info": self.bundle.describe(),
            "dataset_options": dict(spec.dataset_options),
            "split": self.bundle.split_name,
            "seed": spec.seed,
            "profile": spec.protocol.profile,
            "protocol": spec.protocol.to_dict(),
            "overrides": dict(spec.overrides),
            "protocol_label": protocol_label(spec.protocol, spec.overrides),
            "versions": versions() | {"method_version": method.version},  # the code version (publish)
            "device": device_record(device),
            "determinism": determinism_record() | self.speed_record,
            "started": started,
            "finished": datetime.now(UTC).isoformat(),
            "curves": dataclasses.asdict(history),
            "best_epoch": best["epoch"],
            "best_val_acc": best["val_acc"],
            "test": best["test"],
            "validation": best.get("val"),  # checkpoints of older code have no copy
            "seconds_per_epoch": {
                "train": sum(history.train_seconds) / n,
                "epoch": sum(history.epoch_seconds) / n,
                "epochs": n,
                "train_cpu": _cpu_seconds(history, device),
            },
            "peak_memory_bytes": peak,
            "embedding_dim": self.embedding_dim,
            "text_encoder": _text_encoder_record(method.model, spec.protocol),
        })


def learning_rates(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
    """The current rate of each optimiser (of each param group, "name.i", where it has several)."""
    out = {}
    for name, opt in sorted(optimizers.items()):
        groups = opt.param_groups
        for i, group in enumerate(groups):
            out[name if len(groups) == 1 else f"{name}.{i}"] = float(group["lr"])
    return out


def _epoch_record(history: History, val: Evaluation, modalities, rates: dict[str, float]) -> EpochRecord:
    """The epoch just appended to `history`, for the trackers."""
    return EpochRecord(
        epoch=history.epoch[-1],
        train_loss=history.train_loss[-1],
        train_acc=history.train_acc[-1],
        val_acc=history.val_acc[-1],
        val_macro_f1=history.val_macro_f1[-1],
        test_acc=history.test_acc[-1],
        val_modality_acc=dict(val.modality_accuracy),
        val_head_modality_acc=dict(val.head_modality_accuracy),
        learning_rates=rates,
        modalities=tuple(modalities),
        trained=tuple(history.trained_modalities[-1]),
        val_shapley=dict(val.shapley),
        val_shapley_imbalance=val.shapley_imbalance,
        val_utilisation=dict(val.utilisation),
        train_seconds=history.train_seconds[-1],
        epoch_seconds=history.epoch_seconds[-1],
    )


def _cpu_seconds(history: History, device: torch.device) -> float | None:
    """Mean process CPU seconds per training epoch, on a CPU only (on an accelerator the host's
    CPU time is launch overhead, not the training cost) and only when every epoch has it (a run
    resumed from a checkpoint written before it was recorded has not)."""
    cpu = history.train_cpu_seconds
    if device.type != "cpu" or len(cpu) != len(history.epoch_seconds) or None in cpu:
        return None
    return sum(cpu) / len(cpu)


def _padded(curve: list[Any], length: int) -> list[Any]:
    """`curve` with None for the epochs it missed (a curve newer than the run's checkpoint)."""
    return curve + [None] * (length - len(curve))


def _text_encoder_record(model: torch.nn.Module, protocol: Protocol) -> dict[str, Any] | None:
    """Which RoBERTa ran: its folder and whether it had weights or was built from a config."""
    flags = [m.pretrained for m in model.modules() if hasattr(m, "pretrained")]
    if not flags:
        return None
    return {"path": protocol.text_model, "pretrained_weights": all(flags)}
