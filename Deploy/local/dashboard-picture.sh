#!/usr/bin/env bash
# A picture of the dashboard's panels without Grafana: runs the demo, scrapes its two members' /metrics every
# second meanwhile, and draws them (matplotlib, installed here: only this script needs it).
#   Deploy/local/dashboard-picture.sh [OUT.png]        (default Docs/dashboard.png)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-Docs/dashboard.png}"
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install --quiet matplotlib
python3 Deploy/local/dashboard-picture.py --ports 9464,9465 --out "$out" &
scraper=$!
Deploy/demo.sh >"${PROMO_RUN_DIR:-.promo-local}/dashboard-demo.log" 2>&1
wait "$scraper"
