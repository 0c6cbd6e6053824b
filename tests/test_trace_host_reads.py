"""No host sync per batch in the plain-loop recorder: its ``add`` never reads a batch's
tensors on the host (``tests/hostreads.py`` counts the calls that would, on CUDA, make
the host wait for the device); an epoch's values come to the host once, at its end.
The Lightning adapter's hooks get the same check in ``tests/test_lightning_adapter.py``."""

from __future__ import annotations

import numpy as np
import torch
from hostreads import HostReads
from tracehelp import load_trace

from soi_mlflow.tracking.recorder import TraceRecorder


def test_the_recorder_reads_no_batch_on_the_host(module_store) -> None:
    g = torch.Generator().manual_seed(0)
    ids, logits = torch.arange(1000, 1640), torch.randn(640, 3, generator=g)
    labels, members = torch.randint(0, 3, (640,), generator=g), torch.arange(640) % 2
    with TraceRecorder(
        tracking_uri=module_store,
        label_names=["a", "b", "c"],
        members=["m0", "m1"],
        analyze=False,
    ) as rec:
        with HostReads() as reads:
            for _epoch in range(2):
                for start in range(0, 640, 64):
                    rows = slice(start, start + 64)
                    for split in ("train", "validation"):
                        rec.add(split, ids[rows], logits[rows], labels[rows], member=members[rows])
                rec.end_epoch()
        run_id = rec.run_id
    assert reads.calls == {}, f"host reads on a later batch: {dict(reads.calls)}"
    # the counter sees calls: the first batch of each split is checked on the host (CPU)
    assert sum(reads.first.values()) > 0
    trace, _ = load_trace(module_store, run_id, "traces/train/epoch=001.parquet")
    expected = logits.softmax(-1)[torch.arange(640), labels].numpy()
    np.testing.assert_allclose(trace["p_gold"], expected, rtol=2.5e-4)
    assert trace["member"].astype(str).tolist() == [f"m{i % 2}" for i in range(640)]
