#!/usr/bin/env bash
# The GPU check, prepared to run in one go on a machine with a GPU (docs/scaling.md, "On a
# GPU"): what tracing costs there and whether it adds a host synchronisation per batch,
# through both adapters, and a small Ray study sharing the one GPU. The project never
# needs a GPU; without one this runs the same steps on the CPU, as a smoke test.
#
#     bash bench/gpu_check.sh            # from the repository root, set up (make setup)
#     PYTHON=python3 bash bench/gpu_check.sh   # another interpreter with the package
#
# Prints everything to stdout; the figures go into docs/scaling.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1

device=$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
echo "== machine: device $device"
if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
"$PYTHON" -c 'import torch, transformers, lightning, mlflow
print("torch", torch.__version__, "transformers", transformers.__version__,
      "lightning", lightning.__version__, "mlflow", mlflow.__version__)'

# 1. MiniLM fine-tuned through the Lightning and the Trainer adapters, traced and untraced,
#    alternating in one process; on CUDA also the host syncs per batch, traced and untraced.
echo "== tracing's overhead, all-MiniLM-L6-v2 (examples extra), device $device"
(cd bench && "$PYTHON" integrations_overhead.py --size minilm --device "$device" \
    --examples "${EXAMPLES:-4000}" --epochs 2 --repeats "${REPEATS:-3}" --threads 4)

# 2. The same through both adapters for a Qwen2-style decoder classifier (random weights;
#    Qwen2.5-0.5B's shape on CUDA, a small one on the CPU) with LoRA in bf16-mixed.
qwen=qwen2-small qwen_examples=${QWEN_EXAMPLES:-200}
[ "$device" = cuda ] && qwen=qwen2-0.5b qwen_examples=${QWEN_EXAMPLES:-2000}
echo "== tracing's overhead, $qwen with LoRA in bf16, device $device"
(cd bench && "$PYTHON" integrations_overhead.py --size "$qwen" --peft lora --bf16 \
    --device "$device" --examples "$qwen_examples" --epochs 2 \
    --repeats "${REPEATS:-3}" --threads 4)

# The training step's own check: pooling, every head's loss and traced logits, and their
# backward make no host sync (CUDA's sync debug mode; the test is skipped without CUDA).
if [ "$device" = cuda ]; then
    echo "== no host sync in the training step (tests/test_training.py)"
    "$PYTHON" -m pytest -q -n 0 -p no:cacheprovider tests/test_training.py -k no_host_sync
fi

# The trace path's own check: traced epochs of the plain-loop recorder and of the Lightning
# adapter with CUDA's sync debug mode set to "error" around every add() and batch hook, so
# a host sync per batch fails the check (on the CPU a smoke test of the same steps).
echo "== no host sync per batch in the trace path (bench/sync_check.py), device $device"
(cd bench && "$PYTHON" sync_check.py --device "$device")

# 3. A small compare study (three children) on a local Ray cluster, sharing the one GPU
#    (half a GPU each: two children at a time).
echo "== a three-child Ray study sharing the device"
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
gpus=0
[ "$device" = cuda ] && gpus=0.5
start=$(date +%s)
MLFLOW_TRACKING_URI="sqlite:///$store/mlflow.db" "$PYTHON" -m soi_mlflow.cli compare \
    --members books,movies --epochs 2 --max-examples 400 \
    --executor ray --cpus-per-run 1 --gpus-per-run "$gpus" --accelerator "$device"
echo "three-child study (with Ray's start): $(( $(date +%s) - start )) s"
