"""The peer of `benches/job.rs`: the same MNIST jobs in PyTorch, for the ratio.

`--model mlp`: `examples/configs/mnist.json`, 784-256-10 with ReLU, AdamW (lr 1e-3,
weight decay 0.01). `--model cnn`: `examples/configs/mnist_cnn.json`, conv 3x3 "same"
16 -> ReLU -> max-pool 2 -> conv 3x3 32 -> ReLU -> max-pool 2 -> dropout 0.25 -> dense 128
-> ReLU -> dropout 0.25 -> dense 10, AdamW (lr 3e-3, weight decay 0.01). Batch 128, inputs
scaled by 1/255, data in memory, shuffled every epoch, and the loss of every step read
(`loss.item()`), as deeptrain logs it. Prints `samples_per_sec N` (the train loop only, like
deeptrain's `train_secs`). Exits 1 when torch is not installed.
"""
import argparse
import gzip
import struct
import sys
import time
from pathlib import Path

try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"skipped: {e}", file=sys.stderr)
    sys.exit(1)


def idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def model_and_optimizer(name: str):
    nn = torch.nn
    if name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
        nn.Dropout(0.25), nn.Linear(128, 10),
    )
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: whole epochs)")
    p.add_argument("--data", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    x = torch.from_numpy(idx(a.data / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    x = x.reshape(-1, 1, 28, 28)
    y = torch.from_numpy(idx(a.data / "train-labels-idx1-ubyte.gz").astype(np.int64))
    model, opt = model_and_optimizer(a.model)
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    samples, secs, steps, total = 0, 0.0, 0, 0.0
    for _ in range(a.epochs):
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), 128):
            idx_ = order[i : i + 128]
            opt.zero_grad()
            loss = loss_fn(model(x[idx_]), y[idx_])
            loss.backward()
            opt.step()
            total += loss.item()
            samples += len(idx_)
            steps += 1
            if a.steps and steps >= a.steps:
                break
        secs += time.perf_counter() - start
        if a.steps and steps >= a.steps:
            break
    print(f"samples_per_sec {samples / secs:.1f}")


if __name__ == "__main__":
    main()
