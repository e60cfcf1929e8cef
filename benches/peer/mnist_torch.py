"""The peer of `benches/job.rs`: the same MNIST MLP job in PyTorch, for the ratio.

784-256-10 with ReLU, batch 128, AdamW (lr 1e-3, weight decay 0.01), inputs scaled by
1/255, data in memory, shuffled every epoch. Prints `samples_per_sec N` (train loop only).
Exits 1 when torch is not installed.
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--data", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    x = torch.from_numpy(idx(a.data / "train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(idx(a.data / "train-labels-idx1-ubyte.gz").astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    samples, secs = 0, 0.0
    for _ in range(a.epochs):
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), 128):
            idx_ = order[i : i + 128]
            opt.zero_grad()
            loss = loss_fn(model(x[idx_]), y[idx_])
            loss.backward()
            opt.step()
            samples += len(idx_)
        secs += time.perf_counter() - start
    print(f"samples_per_sec {samples / secs:.1f}")


if __name__ == "__main__":
    main()
