"""No host sync per batch on CUDA, checked by CUDA itself: a traced run of the plain-loop
recorder and of the Lightning adapter with ``torch.cuda.set_sync_debug_mode("error")``
around every ``add`` and every batch hook of the adapter, so any call in the trace path
that makes the host wait for the device (``.item()``, ``.cpu()``, a blocking copy) raises
there. The model's and Lightning's own syncs are outside those calls and not ours.
Without CUDA it runs the same steps on the CPU, as a smoke test (no sync mode there).

    .venv/bin/python bench/sync_check.py [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from soi_mlflow.lightning import TraceCallback
from soi_mlflow.tracking.recorder import TraceRecorder


@contextlib.contextmanager
def no_sync(device: str) -> Iterator[None]:
    """CUDA raises on any synchronising call inside (nothing on the CPU)."""
    if device != "cuda":
        yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def recorder_epochs(uri: str, device: str, epochs: int = 2, n: int = 4096) -> int:
    """Batches of 256 through ``TraceRecorder.add``, every call under :func:`no_sync`."""
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(n, device=device)
    logits = torch.randn(n, 3, generator=g).to(device)
    labels = torch.randint(0, 3, (n,), generator=g).to(device)
    members = (torch.arange(n) % 2).to(device)
    batches = 0
    with TraceRecorder(
        tracking_uri=uri, label_names=["a", "b", "c"], members=["m0", "m1"], analyze=False
    ) as rec:
        for _ in range(epochs):
            for start in range(0, n, 256):
                rows = slice(start, start + 256)
                with no_sync(device):
                    rec.add("train", ids[rows], logits[rows], labels[rows], member=members[rows])
                batches += 1
            rec.end_epoch()
    return batches


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))

    def training_step(self, batch, batch_idx):
        ids, x, y = batch
        scores = self.net(x)
        return {"loss": nn.functional.cross_entropy(scores, y), "logits": scores}

    def validation_step(self, batch, batch_idx):
        ids, x, y = batch
        return {"logits": self.net(x)}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class CheckedCallback(TraceCallback):
    """The adapter, each batch hook under :func:`no_sync`; counts the hooks it ran."""

    def __init__(self, device: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.device, self.hooks = device, 0

    def on_train_batch_end(self, *args, **kwargs) -> None:
        with no_sync(self.device):
            super().on_train_batch_end(*args, **kwargs)
        self.hooks += 1

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        with no_sync(self.device):
            super().on_validation_batch_end(*args, **kwargs)
        self.hooks += 1


def lightning_epochs(uri: str, device: str, epochs: int = 2, n: int = 2048) -> int:
    """A traced fit (train_pass and validation) of a small model on ``device``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    data = TensorDataset(torch.arange(n), x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long())
    callback = CheckedCallback(device, select=_select, tracking_uri=uri, analyze=False)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Net(), DataLoader(data, batch_size=256), DataLoader(data, batch_size=256))
    return callback.hooks


def _select(outputs, batch):
    ids, _, y = batch
    return {"example_ids": ids, "logits": outputs["logits"], "labels": y}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default, choices=["cuda", "cpu"])
    device = parser.parse_args().device
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        batches = recorder_epochs(uri, device)
        print(f"recorder: {batches} batches through add, no host sync ({device})")
        hooks = lightning_epochs(uri, device)
        print(f"lightning: {hooks} batch hooks, no host sync ({device})")
    if device != "cuda":
        print("(no CUDA: a smoke test; the sync check itself needs a GPU)")


if __name__ == "__main__":
    main()
