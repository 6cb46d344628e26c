#!/usr/bin/env python3
"""Independent numpy-only reference of the DINOP model contract (the shared MODEL.md).

    python3 dinop_reference.py --out DIR [--seed 7] [--items 40] [--hidden 16]
                               [--attention 8] [--max-days 12] [--check-incremental]
                               [--markets cn,sea [--extensions market-embedding,domain-attention,competition]]
                               [--no-cooperation] [--as-of-day T]

Writes DIR/model.safetensors (random dinop/1 model; with --markets a dinop/2 model over those markets with
MARKETS.md's extensions listed by --extensions, default market-embedding — items of other markets take the
shared parts alone), DIR/events.jsonl (shuffled input events), DIR/expected.jsonl (float64 predictions per
item) and DIR/labels.json (label-function cases). With domain-attention also DIR/domain.jsonl (per item: rep,
o, the gates, both discriminators' softmax) and DIR/domain_loss.json (MARKETS.md's training-only losses and
the feature importance per market). With competition the items belong to two promotions, predictions read each
item's group and neighbours (MARKETS.md `competition`), and DIR/expected_day<T>.jsonl holds every item's prediction
as of day T (--as-of-day, default half of --max-days): every item from its days up to T. Predictions are computed
from the weights as read back from the written file (float32 cast up to float64).
"""
import argparse, json, math, os
import numpy as np
from fixture_io import fnv1a64, read_safetensors, write_safetensors

SII_FIELDS = ["market", "industry", "seller", "brand"]
VOCAB = {"market": 50, "industry": 31, "seller": 97, "brand": 50}  # V_f (differ on purpose)
D_F, D_SII, D_SIS, D_ACT, H_K, N_SLOTS = 4, 8, 8, 8, 12, 10
U = ["age_18_24", "age_25_34", "age_35_49", "age_50_plus", "gender_f", "gender_m",
     "power_low", "power_mid", "power_high", "city_tier1", "city_tier2", "city_tier3"]
U_DIMS = [4, 2, 3, 3]  # bucket counts of age, gender, power, city (each sums to 1)
# name -> (generator, log1p?, centre of T(v), spread of T(v)); centre/spread set the norms
LN = lambda mu, s, integer=False: ("ln", mu, s, integer)
SIS = {"gmv_90d": (LN(9, 1.5), 1, 9, 1.5), "units_90d": (LN(5, 1.2, 1), 1, 5, 1.2),
       "price": (LN(3, 0.6), 0, 25, 15), "orders_90d": (LN(4.5, 1.2, 1), 1, 4.5, 1.2),
       "favourites_90d": (LN(4, 1.5, 1), 1, 4, 1.5)}
DIS = {"gmv": (LN(7, 1.5), 1, 7, 1.5), "units": (LN(3, 1.2, 1), 1, 3, 1.2),
       "orders": (LN(2.5, 1, 1), 1, 2.5, 1), "deposits": (LN(2, 1.2, 1), 1, 2, 1.2),
       "cart_adds": (LN(3.5, 1.2, 1), 1, 3.5, 1.2), "favourites": (LN(3, 1.3, 1), 1, 3, 1.3),
       "views": (LN(6, 1.2, 1), 1, 6, 1.2), "price": (LN(3, 0.6), 0, 25, 15),
       "discount": (("u", 0.0, 1.0), 0, 0.5, 0.3)}
ACT = {"discount_depth": (("u", 0.05, 0.7), 0, 0.35, 0.2), "min_price": (LN(3, 0.6), 0, 25, 15),
       "duration_days": (("int", 1, 31), 0, 10, 8), "fee": (LN(1, 1), 0, 3, 3)}
USPEC = {u: (None, 0, 1.0 / k, 0.2) for u, k in zip(U, [k for k in U_DIMS for _ in range(k)])}
GROUPS = {"sis": SIS, "su": USPEC, "dis": DIS, "du": USPEC, "act": ACT}
HEADS = {"gmv": 1, "bsp": 1, "ss": N_SLOTS, "ja": 1}
EXTENSIONS = ["market-embedding", "domain-attention", "competition"]  # MARKETS.md extensions this reference implements
# MARKETS.md domain-attention settings (V', d', [G0, G1], D_m); every sii.emb.<f> has width d = D_F
DOMAIN_ATTENTION = {"spec_rows": 13, "spec_width": 3, "gate": [6, 4], "width": 5}
COMPETITION_WIDTH = 6  # MARKETS.md competition's F


# ---------------------------------------------------------------- model file
def make_model(rng, H, A, markets=None, extensions=None, cooperation=True):
    """Random weights with the names/shapes of MODEL.md 'Tensor names and shapes' (and MARKETS.md's
    `extensions` over the market ids `markets`; default market-embedding when `markets` is non-empty)."""
    markets = list(markets or [])
    extensions = list(extensions) if extensions is not None else ["market-embedding"] if markets else []
    n = {g: len(spec) for g, spec in GROUPS.items()}
    W = lambda *s: rng.normal(size=s) * 0.3
    B = lambda k: rng.normal(size=k) * 0.05
    t = {}
    for f in SII_FIELDS:
        t["sii.emb." + f] = W(VOCAB[f], D_F)
    t["sii.fc.weight"], t["sii.fc.bias"] = W(D_SII, D_F * len(SII_FIELDS)), B(D_SII)
    t["sis.fc.weight"], t["sis.fc.bias"] = W(D_SIS, n["sis"]), B(D_SIS)
    t["act.fc.weight"], t["act.fc.bias"] = W(D_ACT, n["act"]), B(D_ACT)
    for g, spec in GROUPS.items():  # mean = centre of T(v) + small normal, std = spread * U(0.5, 2)
        t[g + ".norm.mean"] = np.array([s[2] for s in spec.values()]) + rng.normal(size=n[g]) * 0.1
        t[g + ".norm.std"] = np.array([s[3] for s in spec.values()]) * rng.uniform(0.5, 2.0, n[g])
    for gate in "zrn":
        t["gru.%s.w_dis" % gate] = W(H, n["dis"])
        if gate != "n":  # the day's buyers steer the gates only
            t["gru.%s.w_du" % gate] = W(H, n["du"])
        t["gru.%s.u" % gate], t["gru.%s.b" % gate] = W(H, H), B(H)
    t["att.w_h"], t["att.w_du"], t["att.w_su"] = W(A, H), W(A, n["du"]), W(A, n["su"])
    t["att.b"], t["att.v"] = B(A), W(A)
    R = H + D_SII + D_SIS
    for k, out in HEADS.items():
        in_k = R + D_ACT if k == "ja" else R
        t["head.%s.fc1.weight" % k], t["head.%s.fc1.bias" % k] = W(H_K, in_k), B(H_K)
        t["head.%s.fc2.weight" % k], t["head.%s.fc2.bias" % k] = W(out, H_K), B(out)
    t["head.gmv.fc2.bias"] += 0.5  # most log-GMV outputs above the max(out, 0) clamp, a few below
    if "market-embedding" in extensions:  # MARKETS.md market-embedding: one column per market, after MODEL.md's
        for gate in "zrn":
            t["mkt.gru.%s" % gate] = W(H, len(markets))
        t["mkt.att"] = W(A, len(markets))
    if "domain-attention" in extensions:  # drawn after every other tensor, so files without it are unchanged
        t.update(make_domain_attention(rng, len(markets), H + D_SII + D_SIS))
    if "competition" in extensions:  # drawn last, so files without it are unchanged
        t.update(make_competition(rng, H + D_SII + D_SIS, DOMAIN_ATTENTION["width"] if "domain-attention" in extensions else 0,
                                  cooperation))
    config = {"hidden": H, "attention": A, "sii_fields": SII_FIELDS,
              "features": {g: list(spec) for g, spec in GROUPS.items()},
              "log1p": {g: [k for k, s in spec.items() if s[1]] for g, spec in GROUPS.items()},
              "heads": list(HEADS)}
    if extensions:
        config["extensions"], config["markets"] = list(extensions), list(markets)
    if "domain-attention" in extensions:
        config["domain_attention"] = json.loads(json.dumps(DOMAIN_ATTENTION))
    if "competition" in extensions:
        config["competition"] = {"width": COMPETITION_WIDTH, "cooperation": cooperation}
    return {k: v.astype(np.float32) for k, v in t.items()}, config


def make_domain_attention(rng, n_M, R):
    """MARKETS.md domain-attention tensor table (with the training-only dom.* discriminators): weights normal * 0.5,
    biases normal * 0.1. The gate units take weights normal * 2 and, after l0, biases centred on their input's
    mean 0.5 (b = -0.5 Σ_row W + normal * 0.1), so the gates vary across fields and items (std ≈ 0.15) without
    saturating; the head spec weights (normal * 1) make the o term clearly visible in the predictions; dom.c's
    (normal * 3 / √R) keep p(·|rep) off 0 and 1 at any width."""
    V, d2, (G0, G1), Dm = (DOMAIN_ATTENTION[k] for k in ("spec_rows", "spec_width", "gate", "width"))
    W = lambda *s: rng.normal(size=s) * 0.5
    B = lambda *s: rng.normal(size=s) * 0.1
    t = {}
    for f in SII_FIELDS:
        t["sii.spec." + f] = W(n_M * V, d2)
    G = lambda *s: rng.normal(size=s) * 2.0
    centred = lambda w: -0.5 * w.sum(axis=-1) + B(*w.shape[:-1])  # a sigmoid layer's input has mean ≈ 0.5
    for p, lead, d_in in (("gate.c.", (), D_F), ("gate.m.", (n_M,), D_F + d2)):  # the shared, then the market unit
        t[p + "l0.weight"], t[p + "l0.bias"] = G(*lead, G0, d_in), B(*lead, G0)
        t[p + "l1.weight"] = G(*lead, G1, G0)
        t[p + "l1.bias"] = centred(t[p + "l1.weight"])
        t[p + "l2.weight"] = G(*lead, 1, G1)
        t[p + "l2.bias"] = centred(t[p + "l2.weight"])
    t["spec.fc.weight"], t["spec.fc.bias"] = W(n_M, Dm, len(SII_FIELDS) * (D_F + d2)), B(n_M, Dm)
    for k in HEADS:
        t["head.%s.spec.weight" % k] = rng.normal(size=(n_M, H_K, Dm))
    t["dom.c.weight"], t["dom.c.bias"] = rng.normal(size=(n_M, R)) * 3.0 / math.sqrt(R), B(n_M)
    t["dom.m.weight"], t["dom.m.bias"] = W(n_M, Dm), B(n_M)
    return t


def make_competition(rng, R, Dm, cooperation):
    """MARKETS.md competition tensor table: comp.fc (normal * 0.5 / √(R + D_m) keeps f_i · f_j / √F of order 1, so
    the softmaxes are neither uniform nor one-hot), θ's logit, each head's weights on c and (with cooperation) q
    (normal * 1, so both terms visibly move the predictions)."""
    F = COMPETITION_WIDTH
    t = {"comp.fc.weight": rng.normal(size=(F, R + Dm)) * 3.0 / math.sqrt(R + Dm),
         "comp.fc.bias": rng.normal(size=F) * 0.3, "comp.theta": rng.normal(size=1)}
    for k in HEADS:
        t["head.%s.comp.weight" % k] = rng.normal(size=(H_K, F))
        if cooperation:
            t["head.%s.coop.weight" % k] = rng.normal(size=(H_K, F))
    return t


def check_domain_shapes(m, cfg):
    """MARKETS.md domain-attention: every tensor's shape as its table says (d the common sii.emb width)."""
    da, n_M, n_f = cfg["domain_attention"], len(cfg["markets"]), len(cfg["sii_fields"])
    V, d2, (G0, G1), Dm = da["spec_rows"], da["spec_width"], da["gate"], da["width"]
    widths = {m["sii.emb." + f].shape[1] for f in cfg["sii_fields"]}
    assert len(widths) == 1, widths
    d, R = widths.pop(), m["gru.z.b"].shape[0] + m["sii.fc.bias"].shape[0] + m["sis.fc.bias"].shape[0]
    want = {"gate.c.l0.weight": (G0, d), "gate.c.l0.bias": (G0,), "gate.c.l1.weight": (G1, G0),
            "gate.c.l1.bias": (G1,), "gate.c.l2.weight": (1, G1), "gate.c.l2.bias": (1,),
            "gate.m.l0.weight": (n_M, G0, d + d2), "gate.m.l0.bias": (n_M, G0), "gate.m.l1.weight": (n_M, G1, G0),
            "gate.m.l1.bias": (n_M, G1), "gate.m.l2.weight": (n_M, 1, G1), "gate.m.l2.bias": (n_M, 1),
            "spec.fc.weight": (n_M, Dm, n_f * (d + d2)), "spec.fc.bias": (n_M, Dm),
            "dom.c.weight": (n_M, R), "dom.c.bias": (n_M,), "dom.m.weight": (n_M, Dm), "dom.m.bias": (n_M,)}
    want.update({"sii.spec." + f: (n_M * V, d2) for f in cfg["sii_fields"]})
    want.update({"head.%s.spec.weight" % k: (n_M, m["head.%s.fc1.bias" % k].shape[0], Dm) for k in cfg["heads"]})
    for name, shape in want.items():
        assert m[name].shape == shape, (name, m[name].shape, shape)


# ---------------------------------------------------------------- inputs
def normalise(m, cfg, g, raw):
    """x_i = (T_i(raw_i) - mean_i) / std_i; T = log1p(max(v,0)) if listed; missing -> x_i = 0."""
    names, logs = cfg["features"][g], set(cfg["log1p"][g])
    x = np.zeros(len(names))
    for i, name in enumerate(names):
        if raw is not None and name in raw:
            v = float(raw[name])
            v = math.log1p(max(v, 0.0)) if name in logs else v
            x[i] = (v - m[g + ".norm.mean"][i]) / m[g + ".norm.std"][i]
    return x


sig = lambda v: 1.0 / (1.0 + np.exp(-v))
relu = lambda v: np.maximum(v, 0.0)


def market_terms(m, cfg, item):
    """MARKETS.md market-embedding: column m of mkt.gru.z/r/n and mkt.att for the item's market (the exact id's
    position in `markets`); zeros when the model has no such extension or the market is missing, empty or unlisted."""
    H, A = m["gru.z.b"].shape[0], m["att.b"].shape[0]
    markets = cfg.get("markets", []) if "market-embedding" in cfg.get("extensions", []) else []
    mid = item["profile"].get("market") or ""
    if mid not in markets:
        return {"z": np.zeros(H), "r": np.zeros(H), "n": np.zeros(H), "att": np.zeros(A)}
    j = markets.index(mid)
    return {"z": m["mkt.gru.z"][:, j], "r": m["mkt.gru.r"][:, j], "n": m["mkt.gru.n"][:, j], "att": m["mkt.att"][:, j]}


def gru_step(m, h, x_dis, x_du, mk):
    """MODEL.md 'TUC-GRU': buyers steer z and r only; candidate uses r ⊙ h; `mk` the market terms (inside each
    nonlinearity)."""
    z = sig(m["gru.z.w_dis"] @ x_dis + m["gru.z.w_du"] @ x_du + m["gru.z.u"] @ h + m["gru.z.b"] + mk["z"])
    r = sig(m["gru.r.w_dis"] @ x_dis + m["gru.r.w_du"] @ x_du + m["gru.r.u"] @ h + m["gru.r.b"] + mk["r"])
    n = np.tanh(m["gru.n.w_dis"] @ x_dis + m["gru.n.u"] @ (r * h) + m["gru.n.b"] + mk["n"])
    return (1 - z) * h + z * n


def score(m, h, x_du, x_su, mk):
    """score_t = v · tanh(w_h h_t + w_du x_du[t] + w_su x_su + b (+ the market's mkt.att column))."""
    return float(m["att.v"] @ np.tanh(m["att.w_h"] @ h + m["att.w_du"] @ x_du + m["att.w_su"] @ x_su + m["att.b"]
                                      + mk["att"]))


def item_inputs(m, cfg, item):
    """Day sequence: days with a daily_sales event, increasing; no buyers event -> x_du = 0."""
    days = sorted(item["sales"])
    x_dis = [normalise(m, cfg, "dis", item["sales"][d]) for d in days]
    x_du = [normalise(m, cfg, "du", item["buyers"].get(d)) for d in days]
    return x_dis, x_du, normalise(m, cfg, "su", item["profile"].get("su"))


def rep_d_batch(m, cfg, item, H):
    """Batch attention pooling: a_t = softmax(score)_t, rep_d = Σ a_t h_t (0 when T = 0)."""
    x_dis, x_du, x_su = item_inputs(m, cfg, item)
    mk = market_terms(m, cfg, item)
    h, hs, sc = np.zeros(H), [], []
    for xd, xu in zip(x_dis, x_du):
        h = gru_step(m, h, xd, xu, mk)
        hs.append(h)
        sc.append(score(m, h, xu, x_su, mk))
    if not hs:
        return np.zeros(H)
    sc = np.array(sc)
    a = np.exp(sc - sc.max())
    return (a / a.sum()) @ np.array(hs)


def rep_d_incremental(m, cfg, item, H):
    """Online form: m' = max(m, s'), s' = s e^(m-m') + e^(s'-m'), acc' likewise, rep_d = acc/s."""
    x_dis, x_du, x_su = item_inputs(m, cfg, item)
    mk = market_terms(m, cfg, item)
    h, mx, s, acc, reps = np.zeros(H), -math.inf, 0.0, np.zeros(H), [np.zeros(H)]
    for xd, xu in zip(x_dis, x_du):
        h = gru_step(m, h, xd, xu, mk)
        sc = score(m, h, xu, x_su, mk)
        m2 = max(mx, sc)
        decay = math.exp(mx - m2) if mx > -math.inf else 0.0
        s = s * decay + math.exp(sc - m2)
        acc = acc * decay + math.exp(sc - m2) * h
        mx = m2
        reps.append(acc / s)
    return reps  # rep_d after 0, 1, ..., T days


def head(m, k, x, extra=None):
    """out_k = fc2.W relu(fc1.W x + fc1.b (+ `extra`, MARKETS.md's terms on the fc1 pre-activation)) + fc2.b."""
    p = "head.%s." % k
    pre = m[p + "fc1.weight"] @ x + m[p + "fc1.bias"]
    if extra is not None:
        pre = pre + extra
    return m[p + "fc2.weight"] @ relu(pre) + m[p + "fc2.bias"]


def sii_rows(m, cfg, item):
    """MODEL.md 'Categorical ids': s_f = sii.emb.<f>[fnv1a64(s) mod V_f]; an empty or missing id -> row 0."""
    rows = []
    for f in cfg["sii_fields"]:
        sid = item["profile"].get(f) or ""
        tab = m["sii.emb." + f]
        rows.append(tab[fnv1a64(sid) % tab.shape[0] if sid else 0])
    return rows


def market_index(cfg, item):
    """MARKETS.md 'Config': m = 0-based position of the exact (case-sensitive) market id in `markets`;
    None (m = none) when the id is not listed, empty or missing."""
    mid = item["profile"].get("market") or ""
    markets = cfg.get("markets", [])
    return markets.index(mid) if mid and mid in markets else None


def spec_rows(m, cfg, item, j):
    """MARKETS.md domain-attention: p_f = sii.spec.<f>[m·V' + (fnv1a64(s) mod V')], offset 0 for an empty or
    missing id."""
    V, out = cfg["domain_attention"]["spec_rows"], []
    for f in cfg["sii_fields"]:
        sid = item["profile"].get(f) or ""
        out.append(m["sii.spec." + f][j * V + (fnv1a64(sid) % V if sid else 0)])
    return out


def gate_unit(m, p, x, j=None):
    """MARKETS.md domain-attention: gate(x; P) = σ(P.l2.W σ(P.l1.W σ(P.l0.W x + P.l0.b) + P.l1.b) + P.l2.b),
    one scalar; P = gate.c (j None) or market j's slice of gate.m; the same unit serves every field."""
    P = (lambda n: m[p + n]) if j is None else (lambda n: m[p + n][j])
    g = sig(P("l0.weight") @ x + P("l0.bias"))
    g = sig(P("l1.weight") @ g + P("l1.bias"))
    return float(sig(P("l2.weight") @ g + P("l2.bias"))[0])


def domain_attention(m, cfg, item, rows):
    """MARKETS.md domain-attention: a_f = gate(s_f; gate.c) for every item; for a listed market m also
    e_f = concat(s_f, p_f), a_f^m = gate(e_f; gate.m[m]) and o = relu(spec.fc.weight[m] concat_f(a_f^m e_f)
    + spec.fc.bias[m]); for m = none o = 0 (D_m zeros) and there is no a^m."""
    a = [gate_unit(m, "gate.c.", s) for s in rows]
    j = market_index(cfg, item)
    if j is None:
        return {"m": None, "a": a, "am": None, "o": np.zeros(cfg["domain_attention"]["width"])}
    e = [np.concatenate([s, p]) for s, p in zip(rows, spec_rows(m, cfg, item, j))]
    am = [gate_unit(m, "gate.m.", x, j) for x in e]
    o = relu(m["spec.fc.weight"][j] @ np.concatenate([g * x for g, x in zip(am, e)]) + m["spec.fc.bias"][j])
    return {"m": j, "a": a, "am": am, "o": o}


def represent(m, cfg, item, H):
    """MODEL.md 'Encoders': rep = concat(rep_d, e_sii, e_sis), with MARKETS.md domain-attention when listed (e_sii
    reads concat_f(a_f s_f)); returns rep and the domain-attention parts (None without it)."""
    rows = sii_rows(m, cfg, item)
    da = domain_attention(m, cfg, item, rows) if "domain-attention" in cfg.get("extensions", []) else None
    x_sii = np.concatenate([a * s for a, s in zip(da["a"], rows)] if da else rows)
    e_sii = relu(m["sii.fc.weight"] @ x_sii + m["sii.fc.bias"])
    e_sis = relu(m["sis.fc.weight"] @ normalise(m, cfg, "sis", item["profile"].get("sis")) + m["sis.fc.bias"])
    return np.concatenate([rep_d_batch(m, cfg, item, H), e_sii, e_sis]), da


def forward(m, cfg, item, H, spec_heads=True, comp=None):
    """MODEL.md 'Representation and heads', with MARKETS.md's terms on every head's fc1 pre-activation:
    head.<k>.spec.weight[m] o (domain-attention, m listed; `spec_heads` False drops it, for the check that it
    matters) and `comp[k]` (competition's, from `competition_terms`). Returns (prediction, domain parts)."""
    rep, da = represent(m, cfg, item, H)
    use = da is not None and da["m"] is not None and spec_heads

    def spec(k):
        extra = m["head.%s.spec.weight" % k][da["m"]] @ da["o"] if use else None
        if comp is not None:
            extra = comp[k] if extra is None else extra + comp[k]
        return extra
    ss = head(m, "ss", rep, spec("ss"))
    ss = np.exp(ss - ss.max())
    ss /= ss.sum()
    ja = None
    if item["act"] is not None:
        e_act = relu(m["act.fc.weight"] @ normalise(m, cfg, "act", item["act"]) + m["act.fc.bias"])
        ja = float(sig(head(m, "ja", np.concatenate([rep, e_act]), spec("ja"))[0]))
    pred = {"item_id": item["id"], "days_seen": len(item["sales"]),
            "gmv": float(np.expm1(max(head(m, "gmv", rep, spec("gmv"))[0], 0.0))),
            "bsp": float(sig(head(m, "bsp", rep, spec("bsp"))[0])),
            "slot": int(np.argmax(ss)) + 1, "slot_probs": [float(p) for p in ss], "ja": ja}
    return pred, (dict(da, rep=rep) if da else None)


def predict(m, cfg, item, H):
    """MODEL.md prediction of one item (with every extension term the model lists but competition)."""
    return forward(m, cfg, item, H)[0]


# ---------------------------------------------------------------- competition (CATN)
def as_of(item, t):
    """The item with its days up to t only (MARKETS.md: as of day t, item j uses exactly its days ≤ t)."""
    return dict(item, sales={d: v for d, v in item["sales"].items() if d <= t},
                buyers={d: v for d, v in item["buyers"].items() if d <= t})


def competition_terms(m, cfg, items, H, cooperate=True):
    """MARKETS.md competition over `items` (already cut to one as-of day): f_i = leaky_relu(comp.fc (rep_i, o_i)),
    c_i over the group C_t(i) (same promotion, raw market, raw industry; seen items and i itself), q_i over the
    neighbours K_t(i) (same promotion and industry, another raw market, seen); every head's term
    comp.weight c_i (+ coop.weight q_i). Plain loops over every pair, full softmaxes. `cooperate` False drops q
    (for the check that it matters)."""
    F, cooperation = cfg["competition"]["width"], cfg["competition"]["cooperation"]
    f = []
    for it in items:
        rep, da = represent(m, cfg, it, H)
        x = rep if da is None else np.concatenate([rep, da["o"]])
        pre = m["comp.fc.weight"] @ x + m["comp.fc.bias"]
        f.append(np.where(pre > 0, pre, 0.01 * pre))
    seen = [len(it["sales"]) > 0 for it in items]
    ids = lambda it: (it.get("promotion", "reference"), it["profile"].get("market") or "",
                      it["profile"].get("industry") or "")
    theta = float(sig(m["comp.theta"][0]))
    terms = []
    for i, it in enumerate(items):
        p, mk, ind = ids(it)
        group = [i] + [j for j, jt in enumerate(items) if j != i and seen[j] and ids(jt) == (p, mk, ind)]
        beta = softmax(np.array([f[i] @ f[j] / math.sqrt(F) for j in group]))
        c = theta * f[i] + (1 - theta) * sum(b * f[j] for b, j in zip(beta, group))
        term = {k: m["head.%s.comp.weight" % k] @ c for k in HEADS}
        if cooperation and cooperate:
            near = [j for j, jt in enumerate(items) if seen[j] and ids(jt)[0] == p and ids(jt)[2] == ind and ids(jt)[1] != mk]
            q = np.zeros(F)
            if near:
                w = softmax(np.array([f[i] @ f[j] / math.sqrt(F) for j in near]))
                q = sum(b * f[j] for b, j in zip(w, near))
            term = {k: term[k] + m["head.%s.coop.weight" % k] @ q for k in HEADS}
        terms.append(term)
    return terms


def predict_competing(m, cfg, items, H, t, cooperate=True):
    """Every item's prediction as of day t with competition (MARKETS.md: every item's days ≤ t, across the whole
    promotion)."""
    cut = [as_of(it, t) for it in items]
    terms = competition_terms(m, cfg, cut, H, cooperate)
    return [forward(m, cfg, it, H, comp=term)[0] for it, term in zip(cut, terms)]


# ---------------------------------------------------------------- domain-attention (training-only parts)
def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def domain_record(m, item, da):
    """One domain.jsonl line: MARKETS.md 'Training only' p(·|x) = softmax(W x + b) of dom.c on rep and of dom.m
    on o, with rep (gates applied), o and the gates."""
    p_rep = softmax(m["dom.c.weight"] @ da["rep"] + m["dom.c.bias"])
    p_o = softmax(m["dom.m.weight"] @ da["o"] + m["dom.m.bias"])
    fl = lambda v: [float(x) for x in v]
    return {"item_id": item["id"], "market": da["m"], "rep": fl(da["rep"]), "o": fl(da["o"]),
            "gate_shared": fl(da["a"]), "gate_market": None if da["am"] is None else fl(da["am"]),
            "p_rep": fl(p_rep), "p_o": fl(p_o)}


def domain_losses(records, markets, fields):
    """MARKETS.md 'Training only', per item over the n items with a listed market (every term 0 when n = 0):
    discriminator −(1/n) Σ log p(m_i|rep_i); entropy (1/n) Σ_i Σ_d p(d|rep_i) log p(d|rep_i) (no λ); spec
    −(1/n) Σ log p(m_i|o_i) (no λ); importance of field f in market m = mean of a_f^m over m's items."""
    listed = [r for r in records if r["market"] is not None]
    n = len(listed)
    plogp = lambda p: p * math.log(p) if p > 0 else 0.0
    out = {"n": n, "discriminator": 0.0, "entropy": 0.0, "spec": 0.0}
    if n:
        out["discriminator"] = -sum(math.log(r["p_rep"][r["market"]]) for r in listed) / n
        out["entropy"] = sum(sum(plogp(p) for p in r["p_rep"]) for r in listed) / n
        out["spec"] = -sum(math.log(r["p_o"][r["market"]]) for r in listed) / n
    importance = {}
    for j, mid in enumerate(markets):
        gates = [r["gate_market"] for r in listed if r["market"] == j]
        if gates:
            importance[mid] = [sum(g[f] for g in gates) / len(gates) for f in range(len(fields))]
    out["importance"] = importance
    return out


def discriminator_loss_batch(m, reps, ms):
    """The discriminator term vectorised: −mean_i log_softmax(R W^T + b)[i, m_i] via log-sum-exp (0 when n = 0)."""
    if len(ms) == 0:
        return 0.0
    Z = np.asarray(reps) @ m["dom.c.weight"].T + m["dom.c.bias"]
    zmax = Z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(Z - zmax).sum(axis=1))
    return float(np.mean(lse - Z[np.arange(len(ms)), ms]))


# ---------------------------------------------------------------- events
def draw(rng, gen):
    if gen[0] == "ln":
        v = rng.lognormal(gen[1], gen[2])
        return int(v) if gen[3] else round(float(v), 4)
    if gen[0] == "int":
        return int(rng.randint(gen[1], gen[2]))
    return round(float(rng.uniform(gen[1], gen[2])), 4)


def numeric(rng, spec, p_omit):
    return {k: draw(rng, s[0]) for k, s in spec.items() if rng.rand() >= p_omit}


def shares(rng, p_omit):
    out, i = {}, 0
    for k in U_DIMS:
        values = rng.dirichlet(np.ones(k))
        if rng.rand() >= p_omit:  # a dimension is reported whole or not at all (its shares sum to 1)
            for name, v in zip(U[i:i + k], values):
                out[name] = float(v)
        i += k
    return out


def make_items(rng, n_items, max_days, empty_ids=False, competition=False):
    """Random items; `empty_ids` (domain-attention only, so other outputs stay unchanged) sets an empty market id ""
    on every item i with i % 13 == 7 and an empty brand "" on i % 17 == 9 (no extra draws). `competition` puts
    every fifth item in a second promotion and drops the industry of i % 19 == 11 (no extra draws)."""
    inds = ["apparel", "beauty", "electronics", "home"]
    brands = ["brand-%d" % i for i in range(20)] + ["品牌-ñ", ""]
    items = []
    for i in range(n_items):
        iid = "item-%d" % i
        prof = {"market": ["cn", "sea", "eu"][rng.randint(3)], "industry": inds[rng.randint(len(inds))],
                "seller": "seller-%d" % rng.randint(400), "brand": brands[rng.randint(len(brands))],
                "sis": numeric(rng, SIS, 0.1), "su": shares(rng, 0.05)}
        if i % 7 == 3:
            del prof["seller"]
        if i % 11 == 5:
            del prof["su"]
        if empty_ids and i % 13 == 7:
            prof["market"] = ""
        if empty_ids and i % 17 == 9:
            prof["brand"] = ""
        T = 0 if i == 0 else max_days if i == 1 else int(rng.randint(max_days + 1))
        sales = {d: numeric(rng, DIS, 0.05) for d in range(1, T + 1)}
        buyers = {d: shares(rng, 0.03) for d in sales if rng.rand() >= 0.2}
        act = numeric(rng, ACT, 0.1) if rng.rand() < 0.5 else None
        item = {"id": iid, "profile": prof, "sales": sales, "buyers": buyers, "act": act}
        if competition:
            item["promotion"] = "reference-b" if i % 5 == 4 else "reference"
            if i % 19 == 11:
                del prof["industry"]
        items.append(item)
    return items


def events(items):
    for it in items:
        key = {"item_id": it["id"], "promotion_id": it.get("promotion", "reference")}
        yield dict({"schema": "item_profile/1"}, **key, **it["profile"])
        for d, s in it["sales"].items():
            yield dict({"schema": "daily_sales/1", "day": d, "sales": s}, **key)
        for d, b in it["buyers"].items():
            yield dict({"schema": "daily_buyers/1", "day": d, "buyers": b}, **key)
        if it["act"] is not None:
            yield dict({"schema": "activity/1", "activity_id": "act-" + it["id"][5:], "features": it["act"]}, **key)


# ---------------------------------------------------------------- labels
def labels(gmvs, industries):
    """MODEL.md 'Labels': S_i = Σ_{j: G_j ≥ G_i} G_j. best-selling iff S_i < 0.2 · total;
    slot R iff S_i(industry) / industry total ∈ ((R−1)/10, R/10], i.e. R = ceil(10 · frac)."""
    g = np.asarray(gmvs, dtype=np.float64)
    total = g.sum()
    bsp, slots = [], []
    for i in range(len(g)):
        bsp.append(int(g[g >= g[i]].sum() < 0.2 * total))
        same = np.array([ind == industries[i] for ind in industries])
        gi = g[same]
        frac = gi[gi >= g[i]].sum() / gi.sum()
        slots.append(min(N_SLOTS, max(1, math.ceil(frac * N_SLOTS))))
    return bsp, slots


def label_cases(rng, n=60):
    g = np.round(rng.lognormal(8, 1.0, n), 2)
    top = np.argsort(-g)
    g[top[2]] = g[top[3]] = g[top[4]]  # ties near the 20% line
    g[top[30]] = g[top[31]]  # a mid-table tie
    g[20] = 0.0  # a zero GMV
    ind = [["apparel", "beauty", "home"][k] for k in rng.randint(3, size=n)]
    bsp, slot = labels(g, ind)
    return {"gmv": [float(v) for v in g], "industry": ind, "bsp": bsp, "slot": slot}


# ---------------------------------------------------------------- main
def write_domain(out, m, cfg, items, outs, H):
    """MARKETS.md domain-attention outputs: DIR/domain.jsonl (one line per item, expected.jsonl's order) and
    DIR/domain_loss.json, with two self-checks: the discriminator loss per item equals its vectorised form, and
    the head spec term visibly moves the predictions of most items with a listed market."""
    records = [domain_record(m, it, da) for it, (_, da) in zip(items, outs)]
    with open(os.path.join(out, "domain.jsonl"), "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records))
    loss = domain_losses(records, cfg["markets"], cfg["sii_fields"])
    with open(os.path.join(out, "domain_loss.json"), "w", encoding="utf-8") as fh:
        json.dump(loss, fh, ensure_ascii=False)

    listed = [(it, p, da) for it, (p, da) in zip(items, outs) if da["m"] is not None]
    batch = discriminator_loss_batch(m, [da["rep"] for _, _, da in listed], [da["m"] for _, _, da in listed])
    assert abs(batch - loss["discriminator"]) <= 1e-12 * max(1.0, abs(batch)), (batch, loss["discriminator"])
    vec = lambda p: np.array([p["gmv"], p["bsp"]] + p["slot_probs"] + ([p["ja"]] if p["ja"] is not None else []))
    moved = 0
    for it, p, _ in listed:
        a, b = vec(p), vec(forward(m, cfg, it, H, spec_heads=False)[0])
        moved += float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))) > 1e-2
    assert 2 * moved > len(listed) or not listed, (moved, len(listed))
    print("domain-attention: %d of %d items in a listed market (%s); discriminator loss per item %.12g, "
          "vectorised %.12g; the head spec term moves %d of them by > 1e-2 relative"
          % (loss["n"], len(items), ", ".join("%s %d" % (k, sum(da["m"] == j for _, _, da in listed))
                                               for j, k in enumerate(cfg["markets"])),
             loss["discriminator"], batch, moved))


def write_competition(out, m, cfg, items, H, t, preds):
    """MARKETS.md competition: DIR/expected_day<t>.jsonl (every item as of day t), with self-checks that the
    competition terms move most predictions, that cooperation moves some, and that the check on `seen` bites:
    some items are unseen by day t."""
    early = predict_competing(m, cfg, items, H, t)
    with open(os.path.join(out, "expected_day%d.jsonl" % t), "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(p) + "\n" for p in early))
    vec = lambda p: np.array([p["gmv"], p["bsp"]] + p["slot_probs"] + ([p["ja"]] if p["ja"] is not None else []))
    moved = lambda a, b: sum(float(np.max(np.abs(vec(x) - vec(y)) / np.maximum(np.abs(vec(y)), 1e-12))) > 1e-2
                             for x, y in zip(a, b))
    alone = [forward(m, cfg, it, H)[0] for it in items]
    by_comp = moved(preds, alone)
    assert 2 * by_comp > len(items), (by_comp, len(items))
    by_coop = 0
    if cfg["competition"]["cooperation"]:
        by_coop = moved(preds, predict_competing(m, cfg, items, H, max(max(it["sales"], default=0) for it in items),
                                                 cooperate=False))
        assert by_coop > len(items) // 4, (by_coop, len(items))
    unseen = sum(not any(d <= t for d in it["sales"]) for it in items)
    assert 0 < unseen < len(items), unseen
    print("competition: the terms move %d of %d predictions by > 1e-2 relative, cooperation %d; %d items unseen "
          "by day %d" % (by_comp, len(items), by_coop, unseen, t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--attention", type=int, default=8)
    ap.add_argument("--max-days", type=int, default=12)
    ap.add_argument("--check-incremental", action="store_true")
    ap.add_argument("--markets", default="", help="comma-separated market ids: a dinop/2 model over them")
    ap.add_argument("--no-cooperation", action="store_true", help="competition without cooperative attention")
    ap.add_argument("--as-of-day", type=int, default=None, help="competition: also predict as of this day")
    ap.add_argument("--extensions", default=None,
                    help="comma-separated MARKETS.md extensions (%s); default market-embedding when --markets is "
                         "non-empty, else none" % ", ".join(EXTENSIONS))
    a = ap.parse_args()

    markets = [x for x in a.markets.split(",") if x]
    if a.extensions is None:
        extensions = ["market-embedding"] if markets else []
    else:
        extensions = [x for x in a.extensions.split(",") if x]
    bad = [x for x in extensions if x not in EXTENSIONS]
    if bad or len(set(extensions)) != len(extensions):
        ap.error("--extensions: unknown or repeated %s (allowed: %s)" % (bad or extensions, ", ".join(EXTENSIONS)))
    if bool(extensions) != bool(markets) or len(set(markets)) != len(markets):
        ap.error("--extensions needs --markets (unique, non-empty ids) and --markets needs an extension")
    domain = "domain-attention" in extensions
    rng = np.random.RandomState(a.seed)
    os.makedirs(a.out, exist_ok=True)

    tensors, cfg = make_model(rng, a.hidden, a.attention, markets, extensions, cooperation=not a.no_cooperation)
    meta = {"format": "dinop/2" if extensions else "dinop/1", "config": json.dumps(cfg, ensure_ascii=False),
            "version": "1", "parent": ""}
    path = os.path.join(a.out, "model.safetensors")
    write_safetensors(path, tensors, meta)
    m, meta_back = read_safetensors(path)  # predictions use the weights as read back
    assert meta_back == meta and all(np.array_equal(m[k], tensors[k]) for k in tensors)
    cfg = json.loads(meta_back["config"])
    if domain:
        check_domain_shapes(m, cfg)

    competition = "competition" in extensions
    items = make_items(rng, a.items, a.max_days, empty_ids=domain, competition=competition)
    lines = [json.dumps(e, ensure_ascii=False) for e in events(items)]
    rng.shuffle(lines)  # consumers must order days themselves
    with open(os.path.join(a.out, "events.jsonl"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")

    outs = [forward(m, cfg, it, a.hidden) for it in items]
    preds = [p for p, _ in outs]
    if competition:
        preds = predict_competing(m, cfg, items, a.hidden, a.max_days)
        write_competition(a.out, m, cfg, items, a.hidden, a.as_of_day or a.max_days // 2, preds)
    for p in preds:
        vals = [p["gmv"], p["bsp"]] + p["slot_probs"] + ([p["ja"]] if p["ja"] is not None else [])
        assert all(math.isfinite(v) for v in vals) and abs(sum(p["slot_probs"]) - 1) < 1e-12
    with open(os.path.join(a.out, "expected.jsonl"), "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(p) + "\n" for p in preds))

    with open(os.path.join(a.out, "labels.json"), "w", encoding="utf-8") as fh:
        json.dump(label_cases(rng), fh)

    if domain:
        write_domain(a.out, m, cfg, items, outs, a.hidden)

    if a.check_incremental:
        worst = 0.0
        for it in items:
            days = sorted(it["sales"])
            for t, inc in enumerate(rep_d_incremental(m, cfg, it, a.hidden)):  # every prefix
                b = rep_d_batch(m, cfg, dict(it, sales={d: it["sales"][d] for d in days[:t]}), a.hidden)
                worst = max(worst, float(np.max(np.abs(b - inc), initial=0.0)))
        assert worst <= 1e-9, worst
        print("incremental pooling agrees with batch: max |diff| = %.3g" % worst)
    print("wrote %s (%d items, %d events)" % (a.out, len(items), len(lines)))


if __name__ == "__main__":
    main()
