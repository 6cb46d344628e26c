#!/usr/bin/env python3
"""The PyTorch peer of `promo-bench bop` (Deploy/local/bop-bench.sh): BOP.md candidate scorings per second on one
thread, from the same weight file and the same workload.

    bop_torch_peer.py --weights FILE --workload FILE [--json FILE] [--candidates 100] [--batches 1,100,1000]
                      [--seconds 3] [--check 1e-5]

The model is PyTorch's own modules: an `nn.TransformerEncoder` of `nn.TransformerEncoderLayer(d_model=d,
nhead=g, dim_feedforward=d_ff, dropout=0.0, activation="relu", batch_first=True, norm_first=False)` ×L, loaded
with `load_state_dict(strict=True)` from the file's `bop.layers.<l>.*` tensors (BOP.md's names are the layer's
state-dict names), `nn.Embedding`s for `bop.item.emb` and `bop.mkt.emb`, and `nn.Linear(2d, 1)` for `bop.out`.
Eval mode, `torch.inference_mode()`, `torch.set_num_threads(1)`: PyTorch takes its fused encoder-layer fast path
there, its fastest CPU inference.

The workload (written by `promo-bench bop --workload`): one user's history ids, a candidate pool and a market; a
batch of C scores the user against the first C candidates, C sequences of n = len(history) + 1 tokens. As on the
Swift side, ids are hashed to rows once, outside the timed loop; the timed work goes from rows to P(buy). With
--check, this side's P(buy) of the first C candidates must agree with the workload's (Swift's) to that absolute
tolerance, or the script exits 1.
"""
import argparse, json, sys, time

import torch
from torch import nn
from safetensors import safe_open


def fnv1a64(s):
    """DINOP's fnv1a64 (Sources/DINOP/Features.swift): FNV-1a 64 over the UTF-8 bytes, 64-bit wrap-around."""
    h = 0xCBF29CE484222325
    for byte in s.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def item_row(item_rows, iid):
    """BOP.md: row(id) = fnv1a64(utf8(id)) mod V_b; an empty or missing id uses row 0."""
    return 0 if not iid else fnv1a64(iid) % item_rows


class BOP(nn.Module):
    """BOP.md's model from PyTorch modules."""

    def __init__(self, cfg, n_markets):
        super().__init__()
        d = cfg["width"]
        self.item = nn.Embedding(cfg["item_rows"], d)
        self.mkt = nn.Embedding(n_markets, d)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=cfg["heads"], dim_feedforward=cfg["ffn"], dropout=0.0,
                                           activation="relu", batch_first=True, norm_first=False)
        # No final norm (BOP.md); nested tensors are for padding masks, which a batch of one length has none of.
        self.layers = nn.TransformerEncoder(layer, num_layers=cfg["layers"], norm=None, enable_nested_tensor=False)
        self.out = nn.Linear(2 * d, 1)

    def forward(self, tokens, market):
        """tokens [C, n] item rows (the candidate last), market a row of bop.mkt.emb or None: P(buy) [C]."""
        x = self.item(tokens)
        if market is not None:
            x = x + self.mkt.weight[market]
        x = self.layers(x)
        k = tokens.shape[1] - 1
        user = x[:, :k].mean(dim=1) if k > 0 else torch.zeros_like(x[:, 0])
        return torch.sigmoid(self.out(torch.cat([user, x[:, k]], dim=1))).squeeze(1)


def load(path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    assert meta.get("format") == "dinop/2", meta.get("format")
    config = json.loads(meta["config"])
    assert "bop" in config["extensions"], config["extensions"]
    cfg, markets = config["bop"], config["markets"]
    model = BOP(cfg, len(markets))
    model.item.weight.data.copy_(tensors["bop.item.emb"])
    model.mkt.weight.data = tensors["bop.mkt.emb"].clone()  # [0, d] without markets
    model.layers.load_state_dict({name[len("bop."):]: t for name, t in tensors.items() if name.startswith("bop.layers.")},
                                 strict=True)
    model.out.load_state_dict({"weight": tensors["bop.out.weight"], "bias": tensors["bop.out.bias"]}, strict=True)
    return model.eval(), cfg, markets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--json")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--batches", default="1,100,1000")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--check", type=float)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    model, cfg, markets = load(a.weights)
    work = json.load(open(a.workload))
    keep = work["history"][max(len(work["history"]) - (cfg["max_history"] - 1), 0):]
    history = torch.tensor([item_row(cfg["item_rows"], i) for i in keep], dtype=torch.long)
    pool = torch.tensor([item_row(cfg["item_rows"], i) for i in work["candidates"]], dtype=torch.long)
    market = markets.index(work["market"]) if work["market"] in markets else None
    batches = sorted(set([int(b) for b in a.batches.split(",")] + [a.candidates]))
    assert max(batches) <= len(pool), "the workload has %d candidates" % len(pool)

    def score(count):
        cand = pool[:count]
        tokens = torch.cat([history.expand(count, -1), cand[:, None]], dim=1)
        return model(tokens, market)

    with torch.inference_mode():
        p = score(a.candidates).double()
        print("BOP scoring benchmark (PyTorch %s, nn.TransformerEncoderLayer): d = %d, L = %d, g = %d, d_ff = %d, "
              "V_b = %d, history %d + candidate, %d thread" % (torch.__version__, cfg["width"], cfg["layers"],
                                                             cfg["heads"], cfg["ffn"], cfg["item_rows"], len(history),
                                                             torch.get_num_threads()))
        print("P(buy) of the first 5 candidates: " + " ".join("%.8f" % v for v in p[:5].tolist()))
        worst = None
        if "p" in work and work["p"]:
            theirs = torch.tensor(work["p"][:a.candidates], dtype=torch.float64)
            worst = (p[:len(theirs)] - theirs).abs().max().item()
            print("largest |P(torch) − P(swift)| over %d candidates: %.3g" % (len(theirs), worst))
        print("batch   candidate scorings/s (best of 3 runs of %g s), per wall second, per CPU second" % a.seconds)
        rates, cpu_rates = {}, {}
        for batch in batches:
            calls = 1
            while True:  # calls per timed run: about --seconds of work, from a first estimate
                start = time.perf_counter()
                for _ in range(calls):
                    score(batch)
                elapsed = time.perf_counter() - start
                if elapsed >= a.seconds / 20:
                    calls = max(1, int(calls * a.seconds / elapsed))
                    break
                calls *= 2
            # Best of 3 by the wall clock, and by this process's CPU time (what another process's load does not change).
            best = best_cpu = 0.0
            for _ in range(3):
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    score(batch)
                best = max(best, calls * batch / (time.perf_counter() - start))
                best_cpu = max(best_cpu, calls * batch / (time.process_time() - start_cpu))
            rates[str(batch)], cpu_rates[str(batch)] = best, best_cpu
            print("%5d   %14.0f   %14.0f" % (batch, best, best_cpu))
    if a.json:
        json.dump({"side": "pytorch", "version": torch.__version__, "rates": rates, "cpu_rates": cpu_rates, "p": p[:5].tolist(),
                   "batch": a.candidates, "max_diff": worst}, open(a.json, "w"), sort_keys=True)
    if a.check is not None:
        if worst is None or not worst <= a.check:
            print("P(buy) disagree: largest difference %s > %g" % (worst, a.check), file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
