#!/usr/bin/env bash
# The chaos campaign: three members on the local broker, inputs in bursts, one member SIGKILLed every 3–6 s (every
# other kill aimed at a batch in flight) and started again, a model version published halfway; then, over
# committed records only, every (item, sequence) once with no gaps, the last predictions equal to offline ones,
# each bad input one dead letter. One summary line.
#   Deploy/local/chaos.sh [--rounds N]   (default 100; the suite runs 10)
set -euo pipefail
rounds=100
if [ "${1:-}" = "--rounds" ]; then rounds="$2"; fi
PROMO_CHAOS_ROUNDS="$rounds" exec "$(dirname "$0")/test-tier.sh" chaosKills chaos
