#!/usr/bin/env python3
"""Draws the Grafana dashboard's main panels (Deploy/grafana/promo-stream.json) from live scrapes of members'
/metrics, for a picture where no Grafana runs: Deploy/local/dashboard-picture.sh runs the demo and this beside it.

    dashboard-picture.py --ports 9464,9465 --out Docs/dashboard.png [--max-seconds 900]

Scrapes every second while any member answers (waits up to 20 minutes for the first: the demo builds first), then draws. Rates are over
10 s (the dashboard's 1m/5m windows are longer than the demo's stream); quantiles from the histogram buckets as
Prometheus's histogram_quantile computes them."""
import argparse, collections, re, sys, time, urllib.request

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        m = SERIES.match(line)
        if m and not line.startswith("#"):
            out[(m.group(1), tuple(sorted(LABEL.findall(m.group(2) or ""))))] = float(m.group(3))
    return out


def collect(ports, max_seconds):
    samples = []  # (t, port, {series: value})
    start = time.time()
    seen = False
    while time.time() - start < max_seconds:
        t = time.time() - start
        answers = {p: scrape(p) for p in ports}
        for p, values in answers.items():
            if values is not None:
                samples.append((t, p, values))
        if any(v is not None for v in answers.values()):
            seen = True
        elif seen or t > 1200:
            break
        time.sleep(1)
    return samples


def summed(samples, name, by=None, where=lambda labels: True):
    """Per time and group: the sum over members and series of `name` (a gauge or counter)."""
    out = collections.defaultdict(dict)
    for t, port, values in samples:
        t = round(t)
        for (n, labels), v in values.items():
            if n != name or not where(dict(labels)):
                continue
            key = dict(labels).get(by, "") if by else ""
            out[key][t] = out[key].get(t, 0) + v
    return {k: sorted(v.items()) for k, v in out.items()}


def rate(points, window=10):
    out = []
    for i, (t, v) in enumerate(points):
        j = max(0, i - window)
        if t > points[j][0]:
            out.append((t, max(v - points[j][1], 0) / (t - points[j][0])))
    return out


def quantile(samples, name, q, window=10, where=lambda labels: True):
    """histogram_quantile(q, sum by (le) (rate(name_bucket[window])))."""
    buckets = summed(samples, name + "_bucket", by="le", where=where)
    times = sorted({t for series in buckets.values() for t, _ in series})
    rates = {le: dict(rate(points, window)) for le, points in buckets.items()}
    bounds = sorted(rates, key=lambda le: float("inf") if le == "+Inf" else float(le))
    out = []
    for t in times:
        counts = [rates[le].get(t, 0) for le in bounds]
        total = counts[-1] if counts else 0
        if total <= 0:
            continue
        rank, previous_bound, previous_count = q * total, 0.0, 0.0
        for le, count in zip(bounds, counts):
            bound = float("inf") if le == "+Inf" else float(le)
            if count >= rank:
                if bound == float("inf"):
                    out.append((t, previous_bound))
                else:
                    share = (rank - previous_count) / max(count - previous_count, 1e-12)
                    out.append((t, previous_bound + (bound - previous_bound) * share))
                break
            previous_bound, previous_count = bound, count
    return out


def draw(samples, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("Input events/s by topic", {k: rate(v) for k, v in summed(samples, "promo_input_messages_total", "topic").items()}, "events/s"),
        ("Outputs/s by kind", {k: rate(v) for k, v in summed(samples, "promo_output_records_total", "kind").items()}, "records/s"),
        ("Consumer lag (all partitions)", summed(samples, "promo_consumer_lag"), "messages"),
        ("Event to commit latency", {"p50": quantile(samples, "promo_event_to_commit_seconds", 0.5),
                                     "p99": quantile(samples, "promo_event_to_commit_seconds", 0.99)}, "seconds"),
        ("Batch processing (p99)", {"processing": quantile(samples, "promo_batch_processing_seconds", 0.99)}, "seconds"),
        ("Items in state", summed(samples, "promo_state_items", "form"), "items"),
        ("Model version served", {"version": [(t, v / 2) for t, v in summed(samples, "promo_model_version").get("", [])]}, "version (mean of members)"),
        ("Readiness (members ready)", summed(samples, "promo_ready"), "members"),
    ]
    figure, axes = plt.subplots(4, 2, figsize=(13, 12))
    for axis, (title, series, unit) in zip(axes.flat, panels):
        for label, points in sorted(series.items()):
            if points:
                axis.plot([t for t, _ in points], [v for _, v in points], label=label or title)
        axis.set_title(title)
        axis.set_xlabel("seconds since the first scrape")
        axis.set_ylabel(unit)
        if len(series) > 1:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle("promo-stream dashboard panels, drawn from the demo's two members (Deploy/local/dashboard-picture.sh)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", default="9464,9465")
    parser.add_argument("--out", default="Docs/dashboard.png")
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    samples = collect([int(p) for p in args.ports.split(",")], args.max_seconds)
    if not samples:
        sys.exit("no member answered on ports " + args.ports)
    draw(samples, args.out)
    print(f"dashboard picture: {len(samples)} scrapes over {samples[-1][0]:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
