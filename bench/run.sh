#!/usr/bin/env bash
# make bench: run every bench/*.sh (except lib.sh and run.sh) against the demo cluster and
# rewrite bench/RESULTS.md with the date, the machine and each script's table.
# Settings: TG_PORT (default 5499), TG_BENCH_DB (tg_bench), and each script's own TG_BENCH_* variables.
# Arguments: script names (e.g. `bash bench/run.sh audit`) re-run only those; RESULTS.md then keeps
# the other sections from their last run (each section names the build it ran on).
set -uo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

# Start the demo cluster only when nothing answers on TG_PORT.
cluster_up || bash scripts/demo.sh || bdie "could not start the demo cluster on port $TG_PORT"

mkdir -p "$BENCH_OUT"
declare -a done_scripts=() failed=()
only=" $* "
for script in bench/*.sh; do
  name=$(basename "$script" .sh)
  case $name in lib | run) continue ;; esac
  if [ $# -gt 0 ] && [[ $only != *" $name "* ]]; then
    [ -s "$BENCH_OUT/$name.md" ] && done_scripts+=("$name")
    continue
  fi
  blog "running $script"
  rm -f "$BENCH_OUT/$name.md"
  if bash "$script" >"$BENCH_OUT/$name.stdout" 2> >(tee "$BENCH_OUT/$name.stderr" >&2); then
    done_scripts+=("$name")
  else
    failed+=("$name")
    blog "$script failed (see bench/out/$name.stderr)"
  fi
done

results=bench/RESULTS.md
{
  echo "# tradeguard benchmark results"
  echo
  echo "Written by \`make bench\` (bench/run.sh); see bench/README.md for what each figure means."
  if [ $# -gt 0 ]; then
    echo "Sections re-run alone on $(bench_date): $*; the others are from the previous full run (each names its build)."
  fi
  echo
  echo "- date: $(bench_date)"
  echo "- machine: $(machine_cores) cores, $(machine_cpu) (AES-NI: $(machine_aesni)), $(machine_memory) memory"
  echo "- PostgreSQL: $(pg_server_version)"
  echo "- tradeguard: $(tg_version "$TG_BENCH_DB")"
  echo
  for name in "${done_scripts[@]}" "${failed[@]}"; do
    if [ -s "$BENCH_OUT/$name.md" ]; then
      cat "$BENCH_OUT/$name.md"
    elif [ -s "$BENCH_OUT/$name.stdout" ]; then
      echo "### bench/$name.sh"
      echo
      cat "$BENCH_OUT/$name.stdout"
    else
      echo "### bench/$name.sh"
      echo
      echo "No output."
    fi
    for f in "${failed[@]}"; do
      if [ "$f" = "$name" ]; then
        echo
        echo "**bench/$name.sh failed**:"
        echo
        echo '```'
        tail -n 15 "$BENCH_OUT/$name.stderr" | sed 's/\x1b\[[0-9;]*m//g'
        echo '```'
      fi
    done
    echo
  done
} >"$results"
blog "wrote $results"
[ ${#failed[@]} -eq 0 ] || { blog "failed: ${failed[*]}"; exit 1; }
