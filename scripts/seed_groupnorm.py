"""Run the seed layer's own code (PyDLLib's GroupNorm, ../shared/seed/groupnorm_layer.py.txt) for cross-checks.

The seed file was copied from rendered documentation and lost its indentation; `reindent` restores it from the
file's simple structure (one class, its methods, one-line `if` bodies, docstrings). Needs PyTorch; used only by
make_reference.py when PyTorch is importable.
"""
import os

import numpy as np
import torch

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "seed", "groupnorm_layer.py.txt")


def reindent(text):
    out, body, in_doc, one_line_if = [], 0, False, False
    for raw in text.splitlines():
        line = raw.strip()
        if not in_doc and (line in ("[docs]", "") or line.startswith(("import ", "from "))):
            continue
        if in_doc:
            out.append("    " * body + line)
            if line.endswith('"""'):
                in_doc = False
            continue
        if line.startswith("class "):
            out.append(line)
            body = 1
            continue
        if line.startswith("def "):
            out.append("    " + line)
            body = 2
            continue
        if line.startswith('"""'):
            out.append("    " * body + line)
            in_doc = not (len(line) > 3 and line.endswith('"""'))
            continue
        level = body + (1 if one_line_if else 0)
        out.append("    " * level + line)
        one_line_if = line.startswith("if ") and line.endswith(":")
    return "\n".join(out) + "\n"


class BaseRegularisation:
    def __init__(self, **kwargs):
        pass

    def initialise_layer(self, input_shape, **kwargs):
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(input_shape)
        self.device = torch.device("cpu")
        self.data_type = torch.float64


def seed_class():
    namespace = {"torch": torch, "BaseRegularisation": BaseRegularisation}
    with open(SEED) as f:
        exec(compile(reindent(f.read()), "groupnorm_layer.py", "exec"), namespace)
    return namespace["GroupNorm"]


def run_seed(groups, x, gamma, beta, dy):
    layer = seed_class()(num_groups=groups)
    layer.initialise_layer(input_shape=x.shape[1:])
    layer.gamma = torch.tensor(gamma, dtype=torch.float64)
    layer.beta = torch.tensor(beta, dtype=torch.float64)
    layer.gamma.grad = torch.zeros_like(layer.gamma)
    layer.beta.grad = torch.zeros_like(layer.beta)
    y = layer.forward(torch.tensor(x, dtype=torch.float64))
    dx = layer.backward(torch.tensor(dy, dtype=torch.float64))
    return y.numpy(), dx.numpy(), layer.gamma.grad.numpy(), layer.beta.grad.numpy()
