#!/usr/bin/env python3
"""The PyTorch peer of `promo-bench competition` (Deploy/local/competition-bench.sh): the competitive attention of
one group, every item over every item, on one thread, from the same vectors.

    competition_torch_peer.py --vectors FILE --items M [--width 32] [--check 1e-4] [--json FILE]

The vectors file (written by `promo-bench competition --vectors`, one market and one industry): the M × F f's, then
the Swift side's attended vectors `a` of the first min(M, 256) items, then their `q` (float32, raw). The timed
work is `torch.nn.functional.scaled_dot_product_attention(f, f, f)` (scale 1/√F, MARKETS.md's β), PyTorch's fused
CPU attention, which never holds the M × M matrix either. With --check, this side's a of the first items must
agree with Swift's to that tolerance, relative to each item's largest component,, or the script exits 1.
"""
import argparse, json, resource, sys, time

import numpy as np
import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--check", type=float)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    m, width = args.items, args.width
    raw = np.fromfile(args.vectors, dtype=np.float32)
    checked = min(m, 256)
    f = torch.from_numpy(raw[: m * width].reshape(1, m, width).copy())
    swift_a = raw[m * width: (m + checked) * width].reshape(checked, width)
    with torch.inference_mode():
        torch.nn.functional.scaled_dot_product_attention(f[:, :256], f[:, :256], f[:, :256])  # warm up
        start = time.perf_counter()
        a = torch.nn.functional.scaled_dot_product_attention(f, f, f)
        seconds = time.perf_counter() - start
    ours = a[0, :checked].numpy()
    # Relative to each item's largest component: a component near zero has no meaningful relative error.
    scale = np.maximum(np.max(np.abs(swift_a), axis=1, keepdims=True), 1e-12)
    worst = float(np.max(np.abs(ours - swift_a) / scale))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"pytorch {torch.__version__} scaled_dot_product_attention: {m} items, F = {width}, one thread: {seconds:.2f} s "
          f"({m * m / seconds / 1e9:.2f} G item pairs/s); peak resident {peak / 1048576:.0f} MiB; "
          f"largest relative difference from Swift's {worst:.2g}", file=sys.stderr)
    if args.json:
        json.dump({"seconds": seconds, "peak_bytes": peak, "max_relative_diff": worst, "torch": torch.__version__},
                  open(args.json, "w"))
    if args.check is not None and not worst <= args.check:
        print(f"the attended vectors differ from Swift's by {worst:.3g} > {args.check}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
