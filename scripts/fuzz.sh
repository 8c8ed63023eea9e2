#!/usr/bin/env bash
# Long fuzzing runs: a manual command, not part of CI (CI replays the committed
# corpora with `cargo test -p certhub-fuzz`). See fuzz/README.md.
#
#   scripts/fuzz.sh                              # every target, 600 s each, one after another
#   scripts/fuzz.sh jws csr                      # only these targets
#   FUZZ_SECONDS=3600 scripts/fuzz.sh acme_body  # longer
#   FUZZ_FLAGS="-max_len=8192" scripts/fuzz.sh   # extra libFuzzer flags
#   FUZZ_NICE=10 scripts/fuzz.sh                 # on a shared machine
#
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 unlocks the -Z sanitizer
# flags cargo-fuzz needs. New corpus entries land in fuzz/corpus/<target>/
# (minimise before committing:
# `RUSTC_BOOTSTRAP=1 cargo fuzz cmin --fuzz-dir fuzz <target> -- -use_counters=0`).
# Every crash, timeout or OOM input found is copied to
# fuzz/regressions/<target>/, where the replay test picks it up; the script
# then exits non-zero. The last line per target is the summary for the notes.
set -uo pipefail
cd "$(dirname "$0")/.."

ALL=(jws csr list_query rest_body acme_body)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
SECS=${FUZZ_SECONDS:-600}
NICE=${FUZZ_NICE:-0}
read -r -a FLAGS <<<"${FUZZ_FLAGS:-}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || exit 1
fi

status=0
summaries=()
for t in "${TARGETS[@]}"; do
  if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
    echo "unknown target $t (known: ${ALL[*]})" >&2
    exit 2
  fi
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # Only artifacts newer than this marker are from this run.
  marker="fuzz/artifacts/$t/.run-start"
  touch "$marker"
  log="fuzz/artifacts/$t/run.log"
  echo "== fuzzing $t for ${SECS}s (log: $log)"
  nice -n "$NICE" cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECS" -print_final_stats=1 "${FLAGS[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}

  crashes=0
  while IFS= read -r -d '' a; do
    crashes=$((crashes + 1))
    mkdir -p "fuzz/regressions/$t"
    cp "$a" "fuzz/regressions/$t/"
    echo "!! $t: $(basename "$a") copied to fuzz/regressions/$t/." >&2
    echo "   Reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $t $a" >&2
    echo "   Fix the parser; cargo test -p certhub-fuzz replays it from now on." >&2
  done < <(find "fuzz/artifacts/$t" -type f -newer "$marker" \
    \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) -print0)
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
  fi

  ran=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $5}')
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | awk '{print $2}')
  summaries+=("$t: seconds=${ran:-stopped-early} execs=${execs:-?} exec/s=${rate:-?} cov=${cov:-?} corpus=${corp:-?} crashes=$crashes exit=$rc")
done

echo "== summary"
printf '%s\n' "${summaries[@]}"
exit "$status"
