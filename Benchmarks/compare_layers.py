#!/usr/bin/env python3
"""PyTorch's side of `normlab-bench layers`: each layer form NormLab times, as PyTorch computes it.

usage: compare_layers.py THREADS RUNS
Prints one JSON object: {form: [forward seconds, forward+backward seconds]} (medians, float32, autograd), for the
forms PyTorch has; forms it has not (PyDLLib's conventions, RMSNorm over (C, H, W) with γ per channel) are absent.
Prints {} when torch cannot be imported.
"""
import json
import sys
import time

threads, runs = int(sys.argv[1]), int(sys.argv[2])
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("{}")
    sys.exit(0)

torch.set_num_threads(threads)
torch.manual_seed(0)


def median(f):
    f()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[len(samples) // 2]


def timed(make_input, forward, params):
    x = make_input().requires_grad_(True)
    dy = torch.randn_like(x)
    for p in params:
        p.requires_grad_(True)

    def fwd():
        with torch.no_grad():
            forward(x)

    def step():
        y = forward(x)
        y.backward(dy)
        x.grad = None
        for p in params:
            p.grad = None

    return [median(fwd), median(step)]


cnn = lambda: torch.randn(8, 64, 56, 56)
tokens = lambda: torch.randn(4096, 768)
w, b = torch.ones(64), torch.zeros(64)
rm, rv = torch.zeros(64), torch.ones(64)
w768, b768 = torch.ones(768), torch.zeros(768)
wc, bc = torch.ones(64, 56, 56), torch.zeros(64, 56, 56)
rm768, rv768 = torch.zeros(768), torch.ones(768)
out = {
    "groupnorm 32": timed(cnn, lambda x: F.group_norm(x, 32, w, b, 1e-5), [w, b]),
    "layernorm": timed(cnn, lambda x: F.group_norm(x, 1, w, b, 1e-5), [w, b]),
    "instancenorm": timed(cnn, lambda x: F.group_norm(x, 64, w, b, 1e-5), [w, b]),
    "batchnorm": timed(cnn, lambda x: F.batch_norm(x, rm.clone(), rv.clone(), w, b, True, 0.1, 1e-5), [w, b]),
    "batchnorm eval": timed(cnn, lambda x: F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5), [w, b]),
    "layernorm shape=768": timed(tokens, lambda x: F.layer_norm(x, (768,), w768, b768, 1e-5), [w768, b768]),
    "rmsnorm shape=768": timed(tokens, lambda x: F.rms_norm(x, (768,), w768), [w768]),
    "layernorm shape=64,56,56": timed(cnn, lambda x: F.layer_norm(x, (64, 56, 56), wc, bc, 1e-5), [wc, bc]),
    "groupnorm 32 on (4096, 768)": timed(tokens, lambda x: F.group_norm(x, 32, w768, b768, 1e-5), [w768, b768]),
    "batchnorm on (4096, 768)": timed(tokens, lambda x: F.batch_norm(x, rm768.clone(), rv768.clone(), w768, b768, True, 0.1, 1e-5), [w768, b768]),
    "batchnorm eval on (4096, 768)": timed(tokens, lambda x: F.batch_norm(x, rm768, rv768, w768, b768, False, 0.1, 1e-5), [w768, b768]),
}
out["torch_version"] = torch.__version__
print(json.dumps(out))
