"""Per-row arrays of the trace recorder: ids and statistics from a batch's logits, an
epoch's batches stacked, and the last-visit rule. Torch is used where the logits are."""

from __future__ import annotations

from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError

COLUMNS = ("example_id", "member_idx", "task_idx", "gold", "pred", "p_gold", "loss", "margin")


_TENSOR_TYPES: set[type] = set()  # types seen to be tensors (the check runs per batch)


def is_tensor(x: Any) -> bool:
    kind = type(x)
    if kind in _TENSOR_TYPES:
        return True
    if kind.__module__.startswith("torch") and hasattr(x, "detach"):
        _TENSOR_TYPES.add(kind)
        return True
    return False


def on_host(x: Any) -> bool:
    """Whether ``x`` is already in host memory (not a tensor, or a CPU tensor): reading it
    there makes the host wait for no device."""
    return not is_tensor(x) or x.device.type == "cpu"


def to_device(x: Any, device: Any) -> Any:
    """``x`` (an array or a tensor) on ``device``; a host array goes as a non-blocking copy,
    so the caller's thread does not wait for the device."""
    import torch

    t = x if is_tensor(x) else torch.as_tensor(np.asarray(x))
    return t if t.device == device else t.to(device, non_blocking=True)


def to_numpy(x: Any) -> np.ndarray:
    if is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_ids(example_ids: Any, split: str) -> Any:
    """Ids as a 1-D int64 tensor or array (a tensor stays on its device)."""
    if is_tensor(example_ids):
        if example_ids.ndim != 1 or example_ids.dtype.is_floating_point:
            raise SoiInputError(
                f"split {split!r}: example_ids must be a 1-D integer tensor, got "
                f"{example_ids.dtype} of shape {tuple(example_ids.shape)}"
            )
        return example_ids.detach().long()
    arr = np.asarray(example_ids)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise SoiInputError(
            f"split {split!r}: example_ids must be 1-D integers (one stable id per row; see "
            f"soi_mlflow.data.with_example_ids), got {arr.dtype} of shape {arr.shape}"
        )
    return arr.astype(np.int64)


def statistics(
    scores: Any,
    gold: Any,
    task_idx: Any,
    classes: np.ndarray,
    width: int,
    from_probs: bool,
) -> dict[str, Any]:
    """Prediction, gold probability, loss and margin of each row, computed with torch on
    the scores' device (no host sync); tensors stay there until the epoch ends."""
    import torch

    with torch.no_grad():
        s = scores.detach() if is_tensor(scores) else torch.as_tensor(np.asarray(scores))
        s = s.float()
        device = s.device
        g = to_device(gold, device)
        if (classes < width).any():  # padded multi-head logits: mask each row's extra columns
            row_classes = to_device(classes, device)[to_device(task_idx, device)]
            cols = torch.arange(width, device=device)
            fill = 0.0 if from_probs else float("-inf")
            s = s.masked_fill(cols[None, :] >= row_classes[:, None], fill)
        logp = torch.log(s.clamp_min(1e-30)) if from_probs else torch.log_softmax(s, dim=-1)
        if from_probs:  # renormalise, in case the given probabilities do not sum to 1
            logp = logp - torch.logsumexp(logp, dim=-1, keepdim=True)
        valid = (g >= 0) & (g < width)
        safe = torch.where(valid, g, torch.zeros_like(g))
        logp_gold = logp.gather(1, safe[:, None]).squeeze(1)
        logp_gold = torch.where(valid, logp_gold, torch.full_like(logp_gold, float("nan")))
        others = logp.scatter(1, safe[:, None], float("-inf"))
        margin = logp_gold - others.max(dim=1).values
        return {
            "pred": logp.argmax(dim=1),
            "p_gold": logp_gold.exp(),
            "loss": -logp_gold,
            "margin": margin,
        }


def to_host(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
    """Tensors as numpy arrays: from a CUDA device, non-blocking copies into pinned host
    memory and one wait per device for all of them, not one per tensor."""
    import torch

    out: dict[str, np.ndarray] = {}
    waits = set()
    for key, t in tensors.items():
        if t.device.type == "cuda":
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)
            waits.add(t.device)
            out[key] = host.numpy()
        else:
            out[key] = t.detach().cpu().numpy()
    for device in waits:
        torch.cuda.current_stream(device).synchronize()
    return out


def stack(batches: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """One numpy column per field from an epoch's chunks of rows (each with a per-row
    ``step`` array, ``epoch_buffer.SplitBuffer``): a column of tensors is joined
    where they are and comes to the host in one copy (:func:`to_host`)."""
    out: dict[str, np.ndarray] = {}
    tensors: dict[str, Any] = {}
    for key in COLUMNS:
        parts = [b[key] for b in batches]
        if parts and all(is_tensor(p) for p in parts):
            import torch

            tensors[key] = torch.cat([p.to(parts[0].device) for p in parts])
        else:
            out[key] = np.concatenate([to_numpy(p) for p in parts]) if parts else np.empty(0)
    out |= to_host(tensors)
    out["step"] = np.concatenate([np.asarray(b["step"], np.int64) for b in batches])
    out["example_id"] = out["example_id"].astype(np.int64, copy=False)
    return out


def last_visit(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep each example's last row (rows are in visiting order)."""
    ids = rows["example_id"]
    reverse_first = np.unique(ids[::-1], return_index=True)[1]
    keep = len(ids) - 1 - reverse_first
    if len(keep) == len(ids):
        return rows
    keep.sort()
    return {k: v[keep] for k, v in rows.items()}


def dist_rank_world() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch always has it
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
