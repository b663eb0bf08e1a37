#!/usr/bin/env bash
# The test runner behind `npm test` (and so CI, .ci/run): the lint (`npm run lint`: biome, tsc,
# black, flake8), pytest (tests/python), then node's test runner on every tests/node/*.test.ts
# through tsx. All three always run; any failing fails the whole, and so does pytest finding no
# tests (its exit 5).
#   scripts/test.sh [all|lint|py|node] [extra args for that runner]
set -uo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
(($# > 0)) && shift

run_py() {
  # pytest keeps its last three runs' tmp_path folders (about 170 MB each) under /tmp; this one's
  # go to a folder removed when it ends.
  local scratch
  scratch=$(mktemp -d)
  /usr/bin/python3 -m pytest tests/python -q --basetemp "$scratch/pytest" "$@"
  local status=$?
  rm -rf "$scratch"
  if ((status == 5)); then echo "test: pytest collected no tests in tests/python" >&2; fi
  return "$status"
}

run_node() {
  shopt -s nullglob
  local files=(tests/node/*.test.ts)
  if ((${#files[@]} == 0)); then
    echo "test: no tests/node/*.test.ts files" >&2
    return 1
  fi
  # Node 20's runner waits for each file's process to exit before it reports the next file, so
  # one that never exits stalls the whole run with nothing printed (one CI run printed nothing
  # more after a file whose tests had all passed, until its 90 min were up).
  # --test-force-exit ends a file's process when its tests are done; --test-timeout fails any
  # test, and kills any file, still running after 15 min (the longest file takes about 2 min,
  # 4 under a training's load), naming it.
  node --import tsx --test --test-force-exit --test-timeout=900000 "$@" "${files[@]}"
}

run_lint() {
  npm run --silent lint
}

case "$mode" in
  lint) run_lint ;;
  py) run_py "$@" ;;
  node) run_node "$@" ;;
  all)
    lint_status=0
    py_status=0
    node_status=0
    run_lint || lint_status=$?
    run_py || py_status=$?
    run_node || node_status=$?
    if ((lint_status != 0 || py_status != 0 || node_status != 0)); then
      echo "test: FAILED (lint exit $lint_status, pytest exit $py_status, node tests exit $node_status)" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: scripts/test.sh [all|lint|py|node] [runner args]" >&2
    exit 2
    ;;
esac
