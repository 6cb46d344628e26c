#!/usr/bin/env python3
"""Independent numpy-only reference of the BOP model contract (the shared BOP.md), a test fixture.

    python3 bop_reference.py --out DIR [--seed 7] [--width 16] [--layers 2] [--heads 4] [--ffn 24]
                             [--max-history 8] [--item-rows 101] [--markets de,jp,in] [--rep-width 0] [--cases 60]

Writes
- DIR/model.safetensors: a random BOP-only `dinop/2` file (BOP.md): metadata {"format": "dinop/2", "config": JSON
  string, "version": "1", "parent": ""}, config {"extensions": ["bop"], "markets": [...], "bop": {"width": d,
  "layers": L, "heads": g, "ffn": d_ff, "max_history": n_max, "item_rows": V_b}, "heads": []} and every bop.*
  tensor of BOP.md's table (`--markets ""` gives markets [] and bop.mkt.emb [0, d]). With --rep-width R > 0 also
  bop.rep.weight [d, R]; BOP.md says a BOP-only file holds no bop.rep.weight, so such a file is outside the
  contract (a conforming reader refuses it): it exists to test the rep term's math (and that refusal).
- DIR/cases.jsonl: one scoring case a line, {"user", "market" (a listed id, an unlisted one, "" or null),
  "history" (purchase ids strictly before the scoring time, oldest first, any length, repeats included),
  "candidate" (an id, possibly ""), "rep" (R floats, or null), "p" (P(buy), float64)}.
- DIR/batch.json: one user's history scored against 10 candidates, {"market", "history", "candidates", "p"}
  (each candidate takes its own pass over all n tokens).

P is computed in float64 from the weights as read back from the written file (float32 cast up), and cross-checked
against a second, padded-batch form of the same math (key padding mask, padded rows out of t_user).
"""
import argparse, json, math, os
import numpy as np
from fixture_io import fnv1a64, read_safetensors, write_safetensors

LN_EPS = 1e-5


# ---------------------------------------------------------------- model file
def make_model(rng, rng_rep, d, L, g, d_ff, n_max, V_b, markets, R):
    """Random weights with BOP.md's names and shapes: matrices normal * 0.3, embeddings normal * 0.5, biases
    normal * 0.1, LayerNorm weights 1 + normal * 0.1 (their biases normal * 0.1). bop.out.weight is drawn
    normal * 1.2 / sqrt(d) (0.3 at d = 16): after the post-norm layers each token has unit scale, so the logit's
    spread stays about 1.2 whatever d, and P(buy) is spread over (0.05, 0.95) without saturating.
    bop.rep.weight comes from its own stream so the other tensors do not depend on R."""
    W = lambda *s: rng.normal(size=s) * 0.3
    B = lambda *s: rng.normal(size=s) * 0.1
    E = lambda *s: rng.normal(size=s) * 0.5
    t = {"bop.item.emb": E(V_b, d), "bop.mkt.emb": E(len(markets), d)}
    for l in range(L):
        p = "bop.layers.%d." % l
        t[p + "self_attn.in_proj_weight"], t[p + "self_attn.in_proj_bias"] = W(3 * d, d), B(3 * d)
        t[p + "self_attn.out_proj.weight"], t[p + "self_attn.out_proj.bias"] = W(d, d), B(d)
        t[p + "linear1.weight"], t[p + "linear1.bias"] = W(d_ff, d), B(d_ff)
        t[p + "linear2.weight"], t[p + "linear2.bias"] = W(d, d_ff), B(d)
        for nm in ("norm1", "norm2"):
            t[p + nm + ".weight"], t[p + nm + ".bias"] = 1.0 + rng.normal(size=d) * 0.1, B(d)
    t["bop.out.weight"], t["bop.out.bias"] = rng.normal(size=(1, 2 * d)) * 1.2 / math.sqrt(d), B(1)
    if R > 0:
        t["bop.rep.weight"] = rng_rep.normal(size=(d, R)) * 0.3
    cfg = {"extensions": ["bop"], "markets": list(markets),
           "bop": {"width": d, "layers": L, "heads": g, "ffn": d_ff, "max_history": n_max, "item_rows": V_b},
           "heads": []}
    return {k: np.asarray(v).astype(np.float32) for k, v in t.items()}, cfg


def check_shapes(m, cfg):
    """BOP.md 'Tensors': exactly these names, with these shapes (bop.rep.weight optional)."""
    b = cfg["bop"]
    d, L, d_ff, V_b, n_M = b["width"], b["layers"], b["ffn"], b["item_rows"], len(cfg["markets"])
    assert L >= 1 and d % b["heads"] == 0
    want = {"bop.item.emb": (V_b, d), "bop.mkt.emb": (n_M, d), "bop.out.weight": (1, 2 * d), "bop.out.bias": (1,)}
    for l in range(L):
        p = "bop.layers.%d." % l
        want.update({p + "self_attn.in_proj_weight": (3 * d, d), p + "self_attn.in_proj_bias": (3 * d,),
                     p + "self_attn.out_proj.weight": (d, d), p + "self_attn.out_proj.bias": (d,),
                     p + "linear1.weight": (d_ff, d), p + "linear1.bias": (d_ff,),
                     p + "linear2.weight": (d, d_ff), p + "linear2.bias": (d,),
                     p + "norm1.weight": (d,), p + "norm1.bias": (d,), p + "norm2.weight": (d,), p + "norm2.bias": (d,)})
    if "bop.rep.weight" in m:
        want["bop.rep.weight"] = (d, m["bop.rep.weight"].shape[1])
    assert set(m) == set(want), sorted(set(m) ^ set(want))
    for name, shape in want.items():
        assert m[name].shape == shape, (name, m[name].shape, shape)


# ---------------------------------------------------------------- inputs
def item_row(V_b, iid):
    """BOP.md: row(id) = fnv1a64(utf8(id)) mod V_b; an empty or missing id uses row 0."""
    return fnv1a64(iid) % V_b if iid else 0


def market_index(cfg, market):
    """MARKETS.md: m = 0-based position of the exact (case-sensitive) id in `markets`; None (m = none) when the
    id is unlisted, empty or missing (null)."""
    return cfg["markets"].index(market) if market and market in cfg["markets"] else None


# ---------------------------------------------------------------- math (one pass per candidate)
sig = lambda v: 1.0 / (1.0 + math.exp(-v))


def layer_norm(x, w, b):
    """(x − mean) / sqrt(var + 1e-5) · w + b over the last axis, biased variance."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w + b


def softmax_rows(S):
    e = np.exp(S - S.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def encoder_layer(m, p, T, g):
    """BOP.md 'Layers': post-norm nn.TransformerEncoderLayer with relu, no mask, on the n × d matrix T."""
    d = T.shape[1]
    dh = d // g
    Wi, bi = m[p + "self_attn.in_proj_weight"], m[p + "self_attn.in_proj_bias"]
    Q, K, V = (T @ Wi[i * d:(i + 1) * d].T + bi[i * d:(i + 1) * d] for i in range(3))
    heads = []
    for h in range(g):
        c = slice(h * dh, (h + 1) * dh)
        heads.append(softmax_rows(Q[:, c] @ K[:, c].T / math.sqrt(dh)) @ V[:, c])
    MH = np.concatenate(heads, axis=1) @ m[p + "self_attn.out_proj.weight"].T + m[p + "self_attn.out_proj.bias"]
    C = layer_norm(T + MH, m[p + "norm1.weight"], m[p + "norm1.bias"])
    F = np.maximum(C @ m[p + "linear1.weight"].T + m[p + "linear1.bias"], 0.0)
    F = F @ m[p + "linear2.weight"].T + m[p + "linear2.bias"]
    return layer_norm(C + F, m[p + "norm2.weight"], m[p + "norm2.bias"])


def tokens(cfg, history):
    """The k = min(#purchases, n_max − 1) most recent purchases, oldest first."""
    k = min(len(history), cfg["bop"]["max_history"] - 1)
    return list(history[len(history) - k:])


def initial_tokens(m, cfg, market, history, candidate, rep):
    """T0_j = bop.item.emb[row(id_j)] (+ bop.mkt.emb[m] unless m = none) for the k purchases then the candidate;
    the candidate's token alone adds bop.rep.weight · rep when the file has it and a rep is given."""
    ids = tokens(cfg, history) + [candidate]
    V_b = cfg["bop"]["item_rows"]
    T = np.array([m["bop.item.emb"][item_row(V_b, i)] for i in ids])
    j = market_index(cfg, market)
    if j is not None:
        T = T + m["bop.mkt.emb"][j]
    if "bop.rep.weight" in m and rep is not None:
        rep = np.asarray(rep, dtype=np.float64)
        assert rep.shape == (m["bop.rep.weight"].shape[1],), rep.shape
        T[-1] = T[-1] + m["bop.rep.weight"] @ rep
    return T


def forward(m, cfg, market, history, candidate, rep=None):
    """BOP.md: returns (P(buy), t_user, T_L[n])."""
    T = initial_tokens(m, cfg, market, history, candidate, rep)
    for l in range(cfg["bop"]["layers"]):
        T = encoder_layer(m, "bop.layers.%d." % l, T, cfg["bop"]["heads"])
    k = T.shape[0] - 1
    t_user = T[:k].mean(axis=0) if k else np.zeros(T.shape[1])
    z = float(m["bop.out.weight"][0] @ np.concatenate([t_user, T[k]]) + m["bop.out.bias"][0])
    return sig(z), t_user, T[k]


def p_buy(m, cfg, case):
    return forward(m, cfg, case["market"], case["history"], case["candidate"], case.get("rep"))[0]


# ---------------------------------------------------------------- second form: one padded batch
def p_buy_padded(m, cfg, cases):
    """The same math for all cases at once, the way a batched implementation runs it: each case's tokens are its
    k purchases then the candidate at position k (left-aligned), padded to the longest n with garbage rows; the
    padded keys are masked out of the softmax (−inf) and the padded rows take no part in t_user."""
    b = cfg["bop"]
    d, g, N = b["width"], b["heads"], max(len(tokens(cfg, c["history"])) + 1 for c in cases)
    dh = d // g
    X = np.full((len(cases), N, d), 7.0)  # garbage in the padding: it must not leak
    mask = np.zeros((len(cases), N), dtype=bool)  # True = real token
    for i, c in enumerate(cases):
        T0 = initial_tokens(m, cfg, c["market"], c["history"], c["candidate"], c.get("rep"))
        X[i, :len(T0)], mask[i, :len(T0)] = T0, True
    for l in range(b["layers"]):
        p = "bop.layers.%d." % l
        Wi, bi = m[p + "self_attn.in_proj_weight"], m[p + "self_attn.in_proj_bias"]
        QKV = X @ Wi.T + bi  # [B, N, 3d]
        Q, K, V = (QKV[..., i * d:(i + 1) * d].reshape(len(cases), N, g, dh).transpose(0, 2, 1, 3) for i in range(3))
        S = Q @ K.transpose(0, 1, 3, 2) / math.sqrt(dh)  # [B, g, N, N]
        S = np.where(mask[:, None, None, :], S, -np.inf)
        A = np.exp(S - S.max(axis=-1, keepdims=True))
        A = A / A.sum(axis=-1, keepdims=True)
        MH = (A @ V).transpose(0, 2, 1, 3).reshape(len(cases), N, d)
        MH = MH @ m[p + "self_attn.out_proj.weight"].T + m[p + "self_attn.out_proj.bias"]
        C = layer_norm(X + MH, m[p + "norm1.weight"], m[p + "norm1.bias"])
        F = np.maximum(C @ m[p + "linear1.weight"].T + m[p + "linear1.bias"], 0.0)
        X = layer_norm(C + F @ m[p + "linear2.weight"].T + m[p + "linear2.bias"], m[p + "norm2.weight"],
                       m[p + "norm2.bias"])
    n = mask.sum(axis=1)
    hist = mask.copy()
    hist[np.arange(len(cases)), n - 1] = False  # the candidate is not part of t_user
    k = hist.sum(axis=1)
    t_user = (X * hist[..., None]).sum(axis=1) / np.maximum(k, 1)[:, None]  # 0 when k = 0
    cand = X[np.arange(len(cases)), n - 1]
    z = np.concatenate([t_user, cand], axis=1) @ m["bop.out.weight"][0] + m["bop.out.bias"][0]
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------- cases
def item_pool(V_b):
    """Item ids for the cases: plain, unicode, and two ids whose rows collide (besides chance collisions)."""
    pool = ["item-%d" % i for i in range(24)] + ["商品-7", "artículo-ñ", "🎁-gift", "Ä-ß-Ω"]
    base = item_row(V_b, "item-0")
    j = 24
    while item_row(V_b, "item-%d" % j) != base:  # the first later id in item-0's row (V_b tries on average)
        j += 1
    pool.append("item-%d" % j)
    return pool, ("item-0", "item-%d" % j)


def make_cases(rng, rng_rep, cfg, R, n_cases):
    """Hand-placed edge cases first, then random ones up to n_cases (never fewer than the edge cases)."""
    n_max, V_b, markets = cfg["bop"]["max_history"], cfg["bop"]["item_rows"], cfg["markets"]
    pool, (col_a, col_b) = item_pool(V_b)
    listed = markets or [None]
    mk0 = listed[0]
    pick = lambda: pool[rng.randint(len(pool))]
    hist = lambda n: [pick() for _ in range(n)]
    rep = lambda: [round(float(v), 4) for v in rng_rep.normal(size=R)] if R > 0 else None
    cases = []
    add = lambda note, market, history, candidate, r=None, user=None: cases.append(
        {"user": user or "u-%d" % len(cases), "market": market, "history": history, "candidate": candidate,
         "rep": r, "note": note})
    h_exact = hist(n_max - 1)
    add("k = 0: empty history, listed market", mk0, [], pick())
    add("k = 0: empty history, null market", None, [], pick())
    add("history exactly n_max - 1", mk0, h_exact, pick())
    add("history n_max: the oldest purchase is dropped", mk0, ["item-23"] + h_exact, (h_exact or [pick()])[0])
    add("history 3 n_max with repeats: only the k most recent count", mk0,
        hist(2 * n_max) + h_exact[:2] + h_exact[:2] + hist(n_max - 4), pick())
    add("repeated purchases", listed[-1], ["item-3", "item-3", "item-5", "item-3"], "item-5")
    add("candidate already bought", listed[len(listed) // 2], ["item-9"], "item-9")
    add("unlisted market", "xx", hist(3), pick())
    if markets and markets[0].swapcase() != markets[0]:
        add("market ids are case-sensitive: unlisted", markets[0].swapcase(), hist(3), pick())
    add("empty market", "", hist(3), pick())
    add("null market", None, hist(3), pick())
    add("empty candidate id: row 0", mk0, hist(2), "")
    add("empty ids in the history: row 0", mk0, ["", "item-4", ""], "item-6")
    add("unicode ids", mk0, ["商品-7", "🎁-gift", "item-2", "Ä-ß-Ω"], "artículo-ñ", user="用户-ß")
    add("colliding rows (a)", mk0, [col_a, "item-1"], col_b)
    add("colliding rows (b): same P as (a)", mk0, [col_b, "item-1"], col_a)
    for mk in markets:
        add("every listed market", mk, hist(4), "item-11")
    if R > 0:
        h = hist(4)
        r0 = rep()
        add("with rep", mk0, h, "item-12", r0)
        add("the same without rep", mk0, h, "item-12")
        add("rep with k = 0", None, [], "item-13", rep())
        add("rep with an empty candidate id", "xx", hist(2), "", rep())
    markets_any = markets + ["xx", "", None]
    while len(cases) < n_cases:
        n = int(rng.randint(0, 2 * n_max + 1))
        h = [("" if rng.rand() < 0.05 else pick()) for _ in range(n)]
        add("random", markets_any[rng.randint(len(markets_any))], h, pick(), rep() if rng.rand() < 0.5 else None)
    return cases


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--width", type=int, default=16, help="d")
    ap.add_argument("--layers", type=int, default=2, help="L >= 1")
    ap.add_argument("--heads", type=int, default=4, help="g, divides d")
    ap.add_argument("--ffn", type=int, default=24, help="d_ff")
    ap.add_argument("--max-history", type=int, default=8, help="n_max, tokens with the candidate (>= 1)")
    ap.add_argument("--item-rows", type=int, default=101, help="V_b")
    ap.add_argument("--markets", default="de,jp,in", help='comma-separated market ids ("" for markets [])')
    ap.add_argument("--rep-width", type=int, default=0,
                    help="R > 0 adds bop.rep.weight [d, R] (outside BOP.md's BOP-only file: for the rep term's math)")
    ap.add_argument("--cases", type=int, default=60)
    a = ap.parse_args()
    markets = [x for x in a.markets.split(",") if x]
    if len(set(markets)) != len(markets):
        ap.error("--markets: ids must be unique")
    if a.layers < 1 or a.heads < 1 or a.width % a.heads or min(a.width, a.ffn, a.max_history, a.item_rows) < 1 \
            or a.rep_width < 0:
        ap.error("need L >= 1, g | d, d, d_ff, n_max, V_b >= 1 and R >= 0")

    rng = np.random.RandomState([a.seed, 0])  # model
    rng_cases = np.random.RandomState([a.seed, 1])
    rng_rep = np.random.RandomState([a.seed, 2])  # bop.rep.weight and the rep vectors: nothing else depends on R
    os.makedirs(a.out, exist_ok=True)

    tensors, cfg = make_model(rng, rng_rep, a.width, a.layers, a.heads, a.ffn, a.max_history, a.item_rows,
                              markets, a.rep_width)
    meta = {"format": "dinop/2", "config": json.dumps(cfg, ensure_ascii=False), "version": "1", "parent": ""}
    path = os.path.join(a.out, "model.safetensors")
    write_safetensors(path, tensors, meta)
    m, meta_back = read_safetensors(path)  # P uses the weights as read back
    assert meta_back == meta and set(m) == set(tensors) and all(np.array_equal(m[k], tensors[k]) for k in tensors)
    cfg = json.loads(meta_back["config"])
    check_shapes(m, cfg)

    cases = make_cases(rng_cases, rng_rep, cfg, a.rep_width, a.cases)
    ps = [p_buy(m, cfg, c) for c in cases]
    padded = p_buy_padded(m, cfg, cases)
    worst = float(np.max(np.abs(padded - np.array(ps))))
    assert worst <= 1e-12, worst
    assert all(math.isfinite(p) and 0.0 < p < 1.0 for p in ps)
    byname = {c["note"]: p for c, p in zip(cases, ps)}
    assert byname["colliding rows (a)"] == byname["colliding rows (b): same P as (a)"]
    h = cases[2]  # history exactly n_max - 1: with the market term left out P must move
    assert h["market"] is None or abs(p_buy(m, cfg, dict(h, market=None)) - ps[2]) > 1e-6
    if a.rep_width > 0:
        assert abs(byname["with rep"] - byname["the same without rep"]) > 1e-6
    with open(os.path.join(a.out, "cases.jsonl"), "w", encoding="utf-8") as fh:
        for c, p in zip(cases, ps):
            rec = {"user": c["user"], "market": c["market"], "history": c["history"], "candidate": c["candidate"],
                   "rep": c["rep"], "p": p}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")

    # batch: one history (a repeat in it, and as many purchases as fit) against 10 distinct candidates
    pool, _ = item_pool(a.item_rows)
    history = ["item-2", "商品-7", "item-5", "item-2", "item-8", "item-14", "item-2"][-(a.max_history - 1):] \
        if a.max_history > 1 else []
    cands = ["item-2", "item-3", "item-7", "item-10", "item-15", "item-19", "artículo-ñ", "🎁-gift", "", pool[-1]]
    bmarket = markets[1 % len(markets)] if markets else None
    outs = [forward(m, cfg, bmarket, history, c) for c in cands]
    bp = [o[0] for o in outs]
    assert len(set(bp)) == len({item_row(a.item_rows, c) for c in cands})  # one P per distinct row
    assert float(np.max(np.abs(p_buy_padded(m, cfg, [{"market": bmarket, "history": history, "candidate": c}
                                                       for c in cands]) - np.array(bp)))) <= 1e-12
    t_spread = max(float(np.max(np.abs(o[1] - outs[0][1]))) for o in outs)  # t_user depends on the candidate
    assert not history or len({item_row(a.item_rows, c) for c in cands}) == 1 or t_spread > 1e-6, t_spread
    with open(os.path.join(a.out, "batch.json"), "w", encoding="utf-8") as fh:
        json.dump({"market": bmarket, "history": history, "candidates": cands, "p": bp}, fh, ensure_ascii=False)

    allp = np.array(ps + bp)
    print("P(buy) over %d cases + %d batch candidates: min %.4f max %.4f mean %.4f; padded-batch form agrees to "
          "%.2g; t_user moves by up to %.3g across the batch's candidates"
          % (len(ps), len(bp), allp.min(), allp.max(), allp.mean(), worst, t_spread))
    if allp.min() < 0.02 or allp.max() > 0.98:
        print("warning: P(buy) close to saturation")
    if a.rep_width > 0:
        print("note: bop.rep.weight is present; BOP.md's BOP-only file holds none (a conforming reader refuses it)")
    print("wrote %s (d %d, L %d, g %d, d_ff %d, n_max %d, V_b %d, markets %s, R %d)"
          % (a.out, a.width, a.layers, a.heads, a.ffn, a.max_history, a.item_rows, markets, a.rep_width))


if __name__ == "__main__":
    main()
