"""Lookahead task affinity: the known value on a tiny model, and no trace on training."""

from __future__ import annotations

import copy

import pytest
import torch
from mlflow import MlflowClient

from soi_mlflow.callbacks.affinity import lookahead_affinity
from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.encoder import build_tiny
from soi_mlflow.model.module import MultiTaskClassifier
from soi_mlflow.training import TrainConfig, train


def _batch(tok) -> dict[str, torch.Tensor]:
    enc = tok(["a b c", "b c d", "c d e", "d e a"], padding=True, return_tensors="pt")
    return {
        **enc,
        "label": torch.tensor([0, 1, 1, 0]),
        "task_idx": torch.tensor([0, 0, 1, 1]),
        "member_idx": torch.tensor([0, 0, 1, 1]),
        "example_id": torch.arange(4),
    }


def _mean_loss(model, batch, member: int) -> torch.Tensor:
    rows = {k: v[batch["member_idx"] == member] for k, v in batch.items()}
    losses, _ = model.per_example(model.encode(rows), rows, with_trace=False)
    return losses.mean()


def _hand_lookahead(model, batch, lr: float) -> dict[tuple[int, int], float]:
    """Task Affinity Grouping's Z by hand: theta' = theta - lr * grad of L_i, encoder only."""
    out = {}
    for i in (0, 1):
        twin = copy.deepcopy(model).eval()
        grads = torch.autograd.grad(
            _mean_loss(twin, batch, i), list(twin.encoder.parameters()), allow_unused=True
        )
        with torch.no_grad():
            before = {j: float(_mean_loss(twin, batch, j)) for j in (0, 1)}
            for p, g in zip(twin.encoder.parameters(), grads, strict=True):
                if g is not None:
                    p -= lr * g
            for j in (0, 1):
                out[(i, j)] = 1 - float(_mean_loss(twin, batch, j)) / before[j]
    return out


def _adamw_with_momentum(model, batch, lr: float) -> torch.optim.Optimizer:
    """An AdamW that has taken a few steps on member 0, so it carries momentum."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    snapshot = copy.deepcopy(model.state_dict())
    for _ in range(3):
        optimizer.zero_grad()
        _mean_loss(model, batch, 0).backward()
        optimizer.step()
    model.load_state_dict(snapshot)  # the weights back, the optimizer keeps its momentum
    optimizer.zero_grad(set_to_none=True)
    return optimizer


def test_default_lookahead_is_a_plain_gradient_step_at_the_current_lr() -> None:
    encoder, tok = build_tiny(["a b c d e"] * 4, max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 2]).eval()
    batch = _batch(tok)
    optimizer = _adamw_with_momentum(model, batch, lr=1e-2)
    for group in optimizer.param_groups:
        group["lr"] = 3e-3  # as a scheduler leaves it
    got = lookahead_affinity(model, optimizer, batch, [0, 1])
    expected = _hand_lookahead(model, batch, lr=3e-3)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert got[(0, 0)] > 0  # a step on a member's own rows lowers its loss
    # the optimizer's own step (AdamW with its momentum) measures something else
    own = lookahead_affinity(model, optimizer, batch, [0, 1], step="optimizer")
    assert any(abs(own[k] - expected[k]) > 1e-3 for k in expected)


def test_a_zero_learning_rate_gives_no_measurement() -> None:
    encoder, tok = build_tiny(["a b c d e"] * 4, max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    for step in ("gradient", "optimizer"):
        assert lookahead_affinity(model, optimizer, _batch(tok), [0, 1], step=step) == {}


def test_bad_affinity_step_is_refused() -> None:
    encoder, tok = build_tiny(["a b c d e"] * 4, max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with pytest.raises(SoiInputError, match="affinity step"):
        lookahead_affinity(model, optimizer, _batch(tok), [0, 1], step="adam")


def test_the_optimizer_option_equals_the_hand_computed_lookahead_for_sgd() -> None:
    encoder, tok = build_tiny(["a b c d e"] * 4, max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 2]).eval()
    lr = 1e-3
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    batch = _batch(tok)
    got = lookahead_affinity(model, optimizer, batch, [0, 1], step="optimizer")
    # Z = 1 - L'/L of two float32 losses ~0.7: the lookahead batches rows differently (one
    # padded forward pass) than the hand computation's per-member pass: Z moves by ~2e-7
    for key, value in _hand_lookahead(model, batch, lr).items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert got[(0, 0)] > 0  # a step on a member's own rows lowers its loss


def test_the_measurement_leaves_weights_optimizer_and_grads_untouched() -> None:
    encoder, tok = build_tiny(["a b c d e"] * 4, max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = _batch(tok)
    _mean_loss(model, batch, 0).backward()
    optimizer.step()  # some optimizer state to keep
    weights = copy.deepcopy(model.state_dict())
    state = copy.deepcopy(optimizer.state_dict())
    rng = torch.random.get_rng_state()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for step in ("gradient", "optimizer"):
        lookahead_affinity(model, optimizer, batch, [0, 1], step=step)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    now = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert now.keys() == grads.keys() and all(torch.equal(grads[n], now[n]) for n in grads)
    after = optimizer.state_dict()
    for key, slot in state["state"].items():
        for name, value in slot.items():
            assert torch.equal(value, after["state"][key][name]), (key, name)
    assert torch.equal(rng, torch.random.get_rng_state()) and model.training


@pytest.mark.e2e
def test_a_measured_run_ends_exactly_where_an_unmeasured_one_does(store) -> None:
    spec = MixtureSpec(
        "builtin", "task", ("sentiment", "paraphrase"), max_examples=48, eval_max_examples=16
    )
    base = TrainConfig(spec, epochs=2, batch_size=16, progress=False, tracking_uri=store)
    plain = train(base)
    measured = train(
        TrainConfig(
            spec, epochs=2, batch_size=16, progress=False, tracking_uri=store, affinity_every=1
        )
    )
    # every step (2 epochs x 6 batches of 16) but step 0, where warm-up makes the LR 0
    assert measured.affinity.measurements == 11 and measured.affinity.skipped == 1
    a, b = plain.module.state_dict(), measured.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = plain.module.trainer.optimizers[0].state_dict()["state"]
    opt_b = measured.module.trainer.optimizers[0].state_dict()["state"]
    assert all(torch.equal(opt_a[p][n], opt_b[p][n]) for p in opt_a for n in opt_a[p])
    metrics = MlflowClient(store).get_metric_history(
        measured.run_id, "affinity/sentiment_to_paraphrase"
    )
    assert [m.step for m in metrics] == [0, 1]
    assert measured.affinity.mean_matrix().shape == (2, 2)


def test_bad_affinity_settings() -> None:
    spec = MixtureSpec("builtin", "task", ("sentiment", "paraphrase"))
    with pytest.raises(SoiInputError, match="affinity-every must be a positive integer"):
        train(TrainConfig(spec, affinity_every=0))
    with pytest.raises(SoiInputError, match="works with one process"):
        train(TrainConfig(spec, affinity_every=5, devices=2))
    with pytest.raises(SoiInputError, match="affinity step: expected one of gradient, optimizer"):
        train(TrainConfig(spec, affinity_every=5, affinity_step="adam"))
