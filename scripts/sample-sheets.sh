#!/usr/bin/env bash
# Service samples of shipped bundles, judged: starts the service on a temporary data dir, asks it
# for N clips of every class of each model over HTTP (scripts/generate-per-class.ts), scores them
# with the class-score classifier, measures their 8-px grid ratio and draws a contact sheet.
#   scripts/sample-sheets.sh [MODEL ...]        (default: small-baseline small-se)
#   N=8 SEED=1000 OUT=runs/samples PORT=8787 SHEETS=docs/results  (environment)
# Writes $OUT/<model>/ (videos, samples.json, score.json) and $SHEETS/samples-<model>.png.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${DIFFUSABLE_PYTHON:-/usr/bin/python3}
N=${N:-8}
SEED=${SEED:-1000}
OUT=${OUT:-runs/samples}
SHEETS=${SHEETS:-docs/results}
PORT=${PORT:-8787}
models=("$@")
((${#models[@]})) || models=(small-baseline small-se)

data=$(mktemp -d)
server=""
cleanup() {
  if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT
export DIFFUSABLE_DATA_DIR="$data" DIFFUSABLE_RUNS_IMPORT_DIR="" PORT HOST=127.0.0.1
key=$(node --import tsx src/server/cli.ts keys create --name sheets --role admin | grep -o 'dfs_[A-Za-z0-9_-]*' | head -1)
node --import tsx src/server/cli.ts serve >"$data/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.5
done
for m in "${models[@]}"; do
  start=$(date +%s)
  node --import tsx scripts/generate-per-class.ts --key "$key" --url "http://127.0.0.1:$PORT" \
    --model "$m" --n "$N" --seed "$SEED" --out "$OUT"
  echo "sample-sheets: $m: $N clips per class in $(($(date +%s) - start)) s" >&2
  PYTHONPATH=src/training "$PY" -m diffusable.experiments.class_score videos "$OUT/$m" \
    --json "$OUT/$m/score.json" --sheet "$SHEETS/samples-$m.png"
done
