#!/usr/bin/env bash
# make reliability: the long versions of the reliability checks (make test runs short ones).
#  - coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the ciphertext parser/decryptor and the
#    injection tokenizer, TG_FUZZ_SECONDS each (default 120);
#  - 500k mutated ciphertexts through every decrypt_* inside PostgreSQL;
#  - concurrency and crash recovery of the audit trail; secrets-never-leak scan.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

secs=${TG_FUZZ_SECONDS:-120}
failed=0
run() { log "$*"; "$@" || { failed=$((failed + 1)); echo "FAILED: $*"; }; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet || true
fi
if cargo fuzz --version >/dev/null 2>&1; then
  # cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
  for target in envelope_open ids_check; do
    # Not in a subshell: a crash must count in $failed.
    run env -C fuzz RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048
  done
else
  echo "cargo-fuzz unavailable: skipped coverage-guided fuzzing" >&2
  failed=$((failed + 1))
fi

install_extension debug
TG_FUZZ_CASES=500000 run bash tests/decrypt_fuzz.sh
TG_WRITERS_SECONDS=60 run bash tests/audit_faults.sh
run bash tests/secrets.sh

echo
if [ "$failed" -eq 0 ]; then echo "reliability: all passed"; else echo "reliability: $failed failed"; fi
[ "$failed" -eq 0 ]
