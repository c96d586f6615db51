"""Seed argmax: ``argmax(0)`` vs ``max(0).indices`` (``bao.method.seed_labels``) vs numpy on (21, H, W)
seed scores, ms per image, and whether all three agree (ties included: integer-valued scores).

    python -m bench.seed_argmax [--size 176 176] [--classes 21] [--repeats 50]
"""

import argparse
import time

import torch

from bench.common import print_table


def ms(fn, repeats):
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - t) / repeats * 1000, 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs=2, default=[176, 176])
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args()
    torch.manual_seed(0)
    scores = torch.randn(a.classes, *a.size)
    scores[3:] = float("-inf")  # absent classes, as combine_seed_scores leaves them
    ties = torch.randint(0, 3, (a.classes, *a.size)).float()
    ways = {
        "argmax(0)": lambda s: s.argmax(0),
        "max(0).indices": lambda s: s.max(0).indices,
        "numpy argmax(0)": lambda s: torch.from_numpy(s.numpy().argmax(0)),
    }
    ref = {k: ways["argmax(0)"](t) for k, t in (("random", scores), ("ties", ties))}
    rows = [
        {
            "way": name,
            "ms/image": ms(lambda: fn(scores), a.repeats),
            "threads": torch.get_num_threads(),
            "same as argmax(0)": all(torch.equal(fn(t), ref[k]) for k, t in (("random", scores), ("ties", ties))),
        }
        for name, fn in ways.items()
    ]
    print_table(rows, f"Seed argmax over {a.classes} x {a.size[0]} x {a.size[1]} scores")


if __name__ == "__main__":
    main()
