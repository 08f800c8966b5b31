"""Largest absolute difference between two adapter safetensors files (same tensor names required).

Prints one JSON line {"max_abs_diff": x, "tensors": n} or {"error": "..."}; the soak's kill and checkpoint
trials compare a killed run's final adapter with an uninterrupted run's by it.
"""
import json
import sys

import torch
from safetensors.torch import load_file


def main(reference: str, other: str) -> int:
    a, b = load_file(reference), load_file(other)
    if sorted(a) != sorted(b):
        print(json.dumps({"error": f"tensor names differ: {sorted(set(a) ^ set(b))[:5]}"}))
        return 1
    worst = 0.0
    for name, tensor in a.items():
        if tensor.shape != b[name].shape:
            print(json.dumps({"error": f"{name}: shape {tuple(tensor.shape)} vs {tuple(b[name].shape)}"}))
            return 1
        worst = max(worst, (tensor.double() - b[name].double()).abs().max().item() if tensor.numel() else 0.0)
    print(json.dumps({"max_abs_diff": worst, "tensors": len(a)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
