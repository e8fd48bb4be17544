"""Probe (issue 22's stretch, not the library): M1 + M2 of Kingma et al. (2014) on a trained VAE's latent space.

M1 is a VAE trained without labels (a committed key from vaelib/pretrained, or a run folder); its encoder is frozen.
M2 is trained on z1 ~ q(z1|x), drawn afresh each step from a freshly binarised image, with a Gaussian p(z1|y, z2),
hidden layers of --hidden units (--act, softplus by default; --cls-act for the classifier, --act by default), and
vaelib.m2's split, loss weighting (mean U + mean (w L + alpha CE) over a labelled batch every step, w =
--labelled-weight, 1 by default; at w = 0 the labelled bound is still computed and multiplied by 0, as the
committed logs were made) and seeds of the label draw. No learning-rate schedule (Adam at --lr). Test accuracy
uses the mean of q(z1|x) on all 10,000 test images (binarised with vaelib's fixed test seed). One thread; it prints
one line per pass.

    OMP_NUM_THREADS=1 python benchmarks/probes/m1m2_probe.py --m1 2f7ad409e9cc --epochs 30 --alpha 50

CS236's recipe on top (no labelled bound, alpha 100 on the mean cross-entropy, 300-300 ELU networks with a ReLU
classifier, z2 of 64 kept from CS236):

    OMP_NUM_THREADS=1 python benchmarks/probes/m1m2_probe.py --m1 2f7ad409e9cc --seed 3 --alpha 100 \
        --labelled-weight 0 --hidden 300 300 --z 64 --act elu --cls-act relu --epochs 90
"""
import sys, time, math, argparse
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[2]))
from vaelib.model import load_checkpoint
from vaelib.data import load_mnist, binarise
from vaelib import m2
from vaelib.elbo import gaussian_draw, kl_standard_normal, log_normal

p = argparse.ArgumentParser()
p.add_argument('--m1', default='2f7ad409e9cc'); p.add_argument('--seed', type=int, default=0)
p.add_argument('--alpha', type=float, default=50.); p.add_argument('--epochs', type=int, default=30)
p.add_argument('--hidden', type=int, nargs='+', default=[500]); p.add_argument('--z', type=int, default=50)
p.add_argument('--lr', type=float, default=1e-3); p.add_argument('--act', default='softplus')
p.add_argument('--sample', type=int, default=1)
p.add_argument('--labelled-weight', type=float, default=1.)
p.add_argument('--cls-act', default=None)
a = p.parse_args()
torch.manual_seed(a.seed)
data = load_mnist('mnist')
m1 = load_checkpoint(a.m1 + '/model.pt' if '/' in a.m1 else str(__import__('pathlib').Path(__file__).resolve().parents[2] / 'vaelib' / 'pretrained' / a.m1 / 'model.pt')).eval()
for q in m1.parameters(): q.requires_grad_(False)
L1 = m1.config.z_dim
ACTS = {'softplus': nn.Softplus, 'relu': nn.ReLU, 'elu': nn.ELU}
def mlp(i, o, act=None):
    Act = ACTS[act or a.act]
    s = [i] + a.hidden; layers = []
    for u, v in zip(s, s[1:]): layers += [nn.Linear(u, v), Act()]
    return nn.Sequential(*layers, nn.Linear(s[-1], o))
C = 10
cls, enc, dec = mlp(L1, C, a.cls_act), mlp(L1 + C, 2 * a.z), mlp(a.z + C, 2 * L1)
params = [*cls.parameters(), *enc.parameters(), *dec.parameters()]
opt = torch.optim.Adam(params, lr=a.lr)
def feats(x, sample):
    with torch.no_grad():
        mu, lv = m1.encode(x)
        return gaussian_draw(mu, lv)[0] if sample else mu
def lab_elbo(h, y):
    mu, lv = enc(m2.concat(h, y)).chunk(2, -1)
    z, _ = gaussian_draw(mu, lv)
    xm, xl = dec(m2.concat(z, y)).chunk(2, -1)
    return log_normal(h, xm, xl) - math.log(C) - kl_standard_normal(mu, lv)
def U(h):
    logits = cls(h); q = F.softmax(logits, -1).T
    e = lab_elbo(h, m2.all_labels(h))
    return -((q * e).sum(0) + m2.entropy(logits))
parts = m2.split(data.train_y, 100, 1/6, a.seed)
xu = data.train_x[parts.unlabelled]; xl = data.train_x[parts.labelled]; yl = data.train_y[parts.labelled]
xv = binarise(data.train_x[parts.validation], torch.Generator().manual_seed(123)); yv = data.train_y[parts.validation]
def acc(x, y):
    with torch.no_grad(): return (cls(feats(x, False)).argmax(-1) == y).float().mean().item()
g = torch.Generator().manual_seed(a.seed)
t0 = time.time(); B = 100; best = (0, None)
for ep in range(a.epochs):
    order = torch.randperm(len(xu), generator=g)
    for i in range(0, len(xu) - B + 1, B):
        xb = binarise(xu[order[i:i+B]], g)
        li = torch.randperm(100, generator=g)
        xlb = binarise(xl[li], g); ylb = yl[li]
        hu, hl = feats(xb, a.sample), feats(xlb, a.sample)
        loss = U(hu).mean() + (-a.labelled_weight * lab_elbo(hl, m2.one_hot(ylb, hl)) + a.alpha * F.cross_entropy(cls(hl), ylb, reduction='none')).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    va = acc(xv, yv)
    if va > best[0]: best = (va, acc(data.test_x, data.test_y), ep + 1)
    print(f'ep {ep+1} loss {loss.item():.2f} val {va:.4f} test {acc(data.test_x, data.test_y):.4f} t {time.time()-t0:.0f}s', flush=True)
print('best-by-val', best)
