"""A generic fit loop: Adam, a cosine learning-rate schedule, progress, resumable checkpoints.

Knows nothing about meshes or images: a field supplies a *step function* that computes its loss
for a step, fills the parameters' ``.grad`` and returns the numbers to log.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from ._typing import PathLike
from .config import TrainConfig
from .io.checkpoint import load_model_file, save_model_file

__all__ = ["StepFn", "TrainResult", "fit", "lr_at", "save_training_state", "load_training_state", "TRAIN_STATE_FORMAT"]

log = logging.getLogger(__name__)

StepFn = Callable[[int], dict[str, float]]
"""``step_fn(step)`` computes the loss of step ``step``, fills ``.grad`` and returns logs (with "loss")."""

TRAIN_STATE_FORMAT = "neural_sdf.train_state/1"


@dataclass
class TrainResult:
    """What a fit did.

    Attributes:
        steps: total steps completed (including those before a resume).
        resumed_from: the step the fit resumed from (0 for a fresh fit).
        seconds: wall time of this call.
        history: ``[{"step": s, "loss": ..., <terms>}]`` every ``log_every`` steps of this call.
    """

    steps: int
    resumed_from: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at ``step``: a linear warm-up over ``warmup_steps`` (capped at a tenth of the
    steps; from ``lr / warm``), then cosine decay from ``lr`` to ``lr * lr_final_ratio`` over all steps."""
    warm = min(config.warmup_steps, config.steps // 10)
    if step < warm:
        return config.lr * (step + 1) / warm
    if config.lr_final_ratio >= 1.0:
        return config.lr
    t = min(step / max(config.steps - 1, 1), 1.0)
    ratio = config.lr_final_ratio + (1 - config.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return config.lr * ratio


def fit(
    module: nn.Module,
    step_fn: StepFn,
    config: TrainConfig,
    *,
    optimizer: Optional[torch.optim.Optimizer] = None,
    start_step: int = 0,
    on_checkpoint: Optional[Callable[[int, torch.optim.Optimizer], None]] = None,
    progress: bool = True,
    desc: str = "fit",
) -> TrainResult:
    """Run steps ``start_step .. config.steps - 1`` of Adam on ``module``'s parameters.

    Args:
        module: the parameters to optimize.
        step_fn: computes a step's loss and gradients (see ``StepFn``).
        config: steps, learning rate and schedule, checkpoint and log intervals.
        optimizer: an optimizer to continue (e.g. restored from a checkpoint); a new Adam otherwise.
        start_step: first step to run (a resumed fit passes the checkpoint's step).
        on_checkpoint: called as ``on_checkpoint(steps_done, optimizer)`` every
            ``config.checkpoint_every`` steps (not after the last step).
        progress: show a progress bar with loss and ETA on stderr.
        desc: label of the progress bar.
    """
    from .progress import progress_bar

    if optimizer is None:
        optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = progress_bar(total=config.steps, initial=start_step, desc=desc, disable=not progress, unit="step", dynamic_ncols=True, leave=False)
    try:
        for step in range(start_step, config.steps):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            logs = step_fn(step)
            loss = logs["loss"]
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step}; try a lower `lr`")
            optimizer.step()
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                history.append({"step": float(done), "lr": lr, **logs})
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            bar.update(1)
            if on_checkpoint and config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
                on_checkpoint(done, optimizer)
    finally:
        bar.close()
    return TrainResult(config.steps, start_step, time.perf_counter() - t0, history)


def save_training_state(
    path: PathLike, module: nn.Module, optimizer: torch.optim.Optimizer, step: int, meta: dict[str, Any]
) -> None:
    """Write weights, optimizer state and ``step`` atomically, with ``meta`` (e.g. a fingerprint)."""
    tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
    state = optimizer.state_dict()
    slots: dict[str, list[str]] = {}
    for idx, pstate in state["state"].items():
        slots[str(idx)] = []
        for key, value in pstate.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
            slots[str(idx)].append(key)
    save_model_file(
        path,
        tensors,
        {"step": int(step), "param_groups": state["param_groups"], "slots": slots, "meta": meta},
        format=TRAIN_STATE_FORMAT,
    )


def load_training_state(
    path: PathLike, module: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, Any]]:
    """Restore ``module`` and ``optimizer`` from ``path``; returns ``(step, meta)``."""
    tensors, header = load_model_file(path, format=TRAIN_STATE_FORMAT)
    device = next(module.parameters()).device
    module.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    state = {
        "state": {
            int(idx): {key: tensors[f"optim.{idx}.{key}"].to(device if key != "step" else "cpu") for key in keys}
            for idx, keys in header["slots"].items()
        },
        "param_groups": header["param_groups"],
    }
    optimizer.load_state_dict(state)
    return int(header["step"]), header["meta"]
