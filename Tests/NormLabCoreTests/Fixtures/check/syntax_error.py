"""A module with a syntax error."""
import numpy as np

def forward(x, gamma, beta, groups, eps)
    return x, None
