"""Probe (issue 22, not the library): Stanford CS236's SSVAE recipe (homework 2) on vaelib's split, to see whether
its weights and networks move M2 past our 0.88 at 100 labels.

CS236's ssvae.py as we read it: z of size 64; classifier 784-300-300-10 (ReLU); encoder [x, y] and decoder [z, y]
with two hidden layers of 300 ELU units; loss = mean over an unlabelled batch of 100 of U(x) (the same exact sum
over the ten labels as vaelib.m2) + 100 x the classifier's mean cross-entropy over all 100 labelled images,
binarised afresh every step, with no labelled ELBO; Adam at 1e-3; 30,000 steps. The labels, the validation split
and the binarisation are vaelib.m2's. Each pass prints test accuracy on the binarised test images (the course's)
and on the same images' grey levels (what CS236 scores; Pyro too, though Pyro also trains on grey pixels, and
this model sees binarised ones only). Not re-created: CS236's softplus variance (here a log-variance), its 60,000
unlabelled images with a fixed label set. `--arch ours` swaps in vaelib's 500-500 ReLU networks and z of 50;
`--labelled-elbo` adds vaelib's labelled bound's mean; `--decay` takes vaelib's learning-rate schedule.

    OMP_NUM_THREADS=1 python benchmarks/probes/m2_cs236_recipe.py --seed 0 --epochs 60 --out /tmp/cs236_s0.json
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from vaelib import m2  # noqa: E402
from vaelib.data import TEST_BINARISATION_SEED, binarise, load_full_mnist, load_mnist  # noqa: E402
from vaelib.train import lr_factor  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--epochs", type=int, default=60, help="passes over the unlabelled images (500 steps each)")
p.add_argument("--class-weight", type=float, default=100.0)
p.add_argument("--labelled-elbo", action="store_true")
p.add_argument("--arch", choices=("cs236", "ours"), default="cs236")
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--decay", action="store_true", help="vaelib's lr schedule: linear to 0 over the last quarter")
p.add_argument("--out", default=None)
p.add_argument("--save", default=None, help="write the final weights (a state_dict) here")
a = p.parse_args()


def mlp(sizes, act):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(n_in, n_out)] + ([act()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self, hidden, z, cls_act, act):
        super().__init__()
        self.classifier = mlp([784, *hidden, 10], cls_act)
        self.encoder = mlp([784 + 10, *hidden, 2 * z], act)
        self.decoder = mlp([z + 10, *hidden, 784], act)

    def classify(self, x):
        return self.classifier(x)

    def encode(self, x, y):
        return self.encoder(m2.concat(x, y)).chunk(2, -1)

    def decode(self, z, y):
        return self.decoder(m2.concat(z, y))


torch.manual_seed(a.seed)
model = Net([300, 300], 64, nn.ReLU, nn.ELU) if a.arch == "cs236" else Net([500, 500], 50, nn.ReLU, nn.ReLU)
data = load_mnist("mnist", verbose=False)
parts = m2.split(data.train_y, 100, 1 / 6, a.seed)
xu, xl, yl = data.train_x[parts.unlabelled], data.train_x[parts.labelled], data.train_y[parts.labelled]
xv = binarise(data.train_x[parts.validation], torch.Generator().manual_seed(TEST_BINARISATION_SEED))
yv = data.train_y[parts.validation]
grey_test_x = load_full_mnist(None)[2]  # the same 10,000 test images, not binarised (Pyro and CS236 score on these)
opt = torch.optim.Adam(model.parameters(), lr=a.lr)
total = a.epochs * ((len(xu) + 99) // 100)
schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, "decay" if a.decay else "constant"))
g = torch.Generator().manual_seed(a.seed)
hist, best, t0 = [], (0.0, 0.0, 0), time.time()
for ep in range(a.epochs):
    order = torch.randperm(len(xu), generator=g)
    for i in range(0, len(xu), 100):
        x, x_l = binarise(xu[order[i:i + 100]], g), binarise(xl, g)
        loss = -m2.unlabelled_terms(model, x, g).elbo.mean()
        loss = loss + a.class_weight * F.cross_entropy(model.classify(x_l), yl)
        if a.labelled_elbo:
            loss = loss - m2.labelled_elbo(model, x_l, m2.one_hot(yl, x_l), g).elbo.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        va = (model.classify(xv).argmax(-1) == yv).float().mean().item()
        te = (model.classify(data.test_x).argmax(-1) == data.test_y).float().mean().item()
        tg = (model.classify(grey_test_x).argmax(-1) == data.test_y).float().mean().item()
    hist.append((ep + 1, va, te, tg))
    if va > best[0]:
        best = (va, te, ep + 1)
    print(f"ep {ep + 1} val {va:.4f} test {te:.4f} grey {tg:.4f} loss {loss.item():.1f} t {time.time() - t0:.0f}s", flush=True)
print("best-by-val", best, "final", hist[-1])
if a.save:
    torch.save(model.state_dict(), a.save)
if a.out:
    json.dump({"args": vars(a), "history": hist, "best_by_validation": best, "seconds": time.time() - t0},
              open(a.out, "w"))
