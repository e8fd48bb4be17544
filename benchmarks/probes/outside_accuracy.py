"""Probe (issue 22, "accuracy recomputed outside the project"): the grey test accuracy of notebook 13's ten M2s of
Stanford CS236's recipe (alpha 100 and 300, label draws 0 to 4), recomputed WITHOUT vaelib: the IDX files parsed
here, pixels / 255 (no binarisation), and q(y|x) written from the checkpoints' state_dicts with plain torch
(linear, ReLU, linear, ReLU, linear: the 300-300 ReLU classifier). Written by a helper who read vaelib only to learn
the layer order; compare with benchmarks/m2_cs236_table.py's grey column.

    python benchmarks/probes/outside_accuracy.py DIR      # DIR holds full MNIST's MNIST/raw (uncompressed IDX)
"""
import glob
import json
import os
import statistics
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PRETRAINED = Path(__file__).resolve().parents[2] / "vaelib" / "pretrained"
if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
    raise SystemExit("usage: python benchmarks/probes/outside_accuracy.py DIR, where DIR/MNIST/raw holds "
                     "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, uncompressed")
RAW = Path(sys.argv[1]) / "MNIST" / "raw"


def idx(path):
    with open(path, "rb") as f:
        b = f.read()
    zero, dtype, nd = struct.unpack(">HBB", b[:4])
    assert zero == 0 and dtype == 0x08
    dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


X = torch.from_numpy(idx(RAW / "t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0)
Y = torch.from_numpy(idx(RAW / "t10k-labels-idx1-ubyte").astype(np.int64))
assert X.shape == (10000, 784) and Y.shape == (10000,)
rows = []
for d in sorted(glob.glob(f"{PRETRAINED}/*/")):
    s = json.load(open(d + "settings.json"))["settings"]
    m = s.get("model")
    if not (isinstance(m, dict) and m.get("kind") == "m2" and m.get("activation") == "elu"):
        continue
    assert m["classifier_activation"] == "relu" and list(m["hidden"]) == [300, 300]
    sd = torch.load(d + "model.pt", weights_only=True)["state_dict"]
    with torch.no_grad():
        h = F.relu(F.linear(X, sd["classifier.0.0.weight"], sd["classifier.0.0.bias"]))
        h = F.relu(F.linear(h, sd["classifier.0.2.weight"], sd["classifier.0.2.bias"]))
        logits = F.linear(h, sd["classifier.1.weight"], sd["classifier.1.bias"])
    acc = (logits.argmax(-1) == Y).double().mean().item()
    rows.append((os.path.basename(d.rstrip("/")), s["alpha"], s["seed"], acc))
for a in sorted({r[1] for r in rows}):
    rs = sorted([r for r in rows if r[1] == a], key=lambda r: r[2])
    for k, al, seed, acc in rs:
        print(f"{k}  alpha={al:g}  seed={seed}  acc={acc:.4f}  ({acc * 10000:.0f}/10000)")
    accs = [r[3] for r in rs]
    print(f"alpha {a:g}: n={len(accs)} mean={statistics.mean(accs):.4f} sd={statistics.stdev(accs):.4f}\n")
