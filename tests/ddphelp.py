"""A tiny real training on 2 CPU processes (torch.distributed, gloo) traced by the
recorder, run once per shard setting in the same process group (tests/test_ddp_shards.py).

Data: a linear problem with label noise, ``N_TRAIN`` examples (odd: the
``DistributedSampler`` pads the last rank with a repeat of an example) and ``N_VAL``
validation examples; members named ``even``/``odd`` by id, met in a different order on
each rank. The model is a ``DistributedDataParallel`` linear layer; every setting starts
from the same seed, so the settings see the same logits.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

N_TRAIN, N_VAL, EPOCHS, WORLD = 101, 37, 3, 2
# (name, shards=, SHARD_ROWS and ID_ROUND during the run): gathered by the automatic
# choice; sharded on request; sharded by the automatic choice past a small threshold, its
# duplicates looked for in many rounds of few ids
SETTINGS = (
    ("gathered", None, None, None),
    ("sharded", True, None, None),
    ("auto", None, 50, 16),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data(n: int, offset: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    noisy = torch.rand(n, generator=g) < 0.2
    y = ((x[:, 0] + 0.3 * x[:, 1] > 0) ^ noisy).long()
    ids = offset + 7 * torch.arange(n, dtype=torch.int64)
    return torch.utils.data.TensorDataset(x, y, ids)


def _train(rank: int, uri: str, shards: bool | None) -> str | None:
    import numpy as np
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler

    from soi_mlflow.tracking.recorder import TraceRecorder

    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train, val = _data(N_TRAIN, 1000, 1), _data(N_VAL, 5000, 2)
    sampler = DistributedSampler(train, shuffle=True, seed=0)
    val_loader = DataLoader(val, batch_size=8, sampler=DistributedSampler(val, shuffle=False))
    rec = TraceRecorder(  # not analysed: the test compares what the recorder itself logs
        tracking_uri=uri,
        experiment="ddp-shards",
        label_names=["neg", "pos"],
        shards=shards,
        analyze=False,
    )
    with rec:
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            for x, y, ids in DataLoader(train, batch_size=8, sampler=sampler):
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                member = np.where(ids.numpy() % 2 == 0, "even", "odd")
                rec.add("train", ids, logits, y, member=member)
            with torch.no_grad():
                for x, y, ids in val_loader:
                    member = np.where(ids.numpy() % 2 == 0, "even", "odd")
                    rec.add("validation", ids, model(x), y, member=member)
            rec.end_epoch()
    return rec.run_id


def worker(rank: int, port: int, uri: str, out: str) -> None:
    """One rank: every setting in turn; rank 0 writes ``{setting: run id}`` to ``out``."""
    import torch.distributed as dist

    from soi_mlflow.tracking import shards as shard_rules

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    default = shard_rules.SHARD_ROWS, shard_rules.ID_ROUND
    try:
        runs = {}
        for name, shards, threshold, id_round in SETTINGS:
            shard_rules.SHARD_ROWS = threshold or default[0]
            shard_rules.ID_ROUND = id_round or default[1]
            runs[name] = _train(rank, uri, shards)
        if rank == 0:
            Path(out).write_text(json.dumps(runs))
    finally:
        shard_rules.SHARD_ROWS, shard_rules.ID_ROUND = default
        dist.destroy_process_group()
    # Every run is ended and its files are in the store: leave without the interpreter's
    # finalisation. A DistributedDataParallel model keeps its process group (and its gloo
    # threads) alive to the end of the process, destroy_process_group or not; a gloo
    # thread that lets go of a collective's tensor once finalisation has begun takes the
    # GIL, is ended by Python, and the C++ runtime aborts the rank (SIGABRT, "terminate
    # called without an active exception": ~AsyncAllreduceWork -> decref_pyobject ->
    # take_gil -> pthread_exit, seen in a core dump, about 1 exit in 8 on 2 busy cores).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_settings(uri: str, folder: Path) -> dict[str, str]:
    """Train every setting on ``WORLD`` spawned processes; their run ids by setting."""
    import torch.multiprocessing as mp

    out = folder / "runs.json"
    mp.spawn(worker, args=(free_port(), uri, str(out)), nprocs=WORLD, join=True)
    return json.loads(out.read_text())
