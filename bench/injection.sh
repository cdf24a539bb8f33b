#!/usr/bin/env bash
# Injection-check benchmark (issue 7): speed of tradeguard.is_attack over 1M mixed values against
# the guide's regex list as one `v ~* '...'` in the same run, and detection / false-alarm rates on
# the shared corpus next to libinjection (PyPI libinjection-python) and the guide's regex list
# (both computed by bench/injection/compare.py; tradeguard's verdicts come from the database).
# Prints a markdown table and writes bench/out/injection.md (raw runs in bench/out/injection.raw,
# compare.py's JSON in bench/out/injection.json).
#
# Settings (environment):
#   TG_PORT              server port (default 5499; socket in /tmp, superuser postgres)
#   TG_BENCH_IDS_DB      scratch database, dropped and recreated (default tg_bench_ids)
#   TG_BENCH_IDS_ROWS    values in the speed test (default 1000000)
#   TG_BENCH_REPS        timed repetitions, the median is kept (default 3)
#   TG_CORPUS_DIR        the shared corpus (default ../shared/corpus, see bench/injection/README.md)
#   TG_BENCH_TG_SQL      workaround only: install tradeguard from this SQL file (see README)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME=injection
DB=${TG_BENCH_IDS_DB:-tg_bench_ids}
ROWS=${TG_BENCH_IDS_ROWS:-1000000}
REPS=${TG_BENCH_REPS:-3}
COMPARE=$BENCH_DIR/injection/compare.py

cluster_up || bdie "no PostgreSQL server answers on port $TG_PORT (start it with: make demo)"
mkdir -p "$BENCH_OUT"
t_start=$(date +%s)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT


# ------------------------------------------------------------------ samples and setup
blog "injection: dumping the corpus samples (compare.py --dump-samples)"
python3 "$COMPARE" --dump-samples >"$WORK/samples.tsv" || bdie "compare.py --dump-samples failed (corpus in \$TG_CORPUS_DIR or ../shared/corpus?)"
nsamples=$(wc -l <"$WORK/samples.tsv")
[ "$nsamples" -gt 0 ] || bdie "no samples dumped"

# The guide's regexes, taken from compare.py, as one PostgreSQL ARE for `~*`: the (?i) prefixes
# are dropped (~* is case-insensitive) and Python's word boundary \b becomes PostgreSQL's \y.
GUIDE_RE=$(python3 - "$BENCH_DIR/injection" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import compare
parts = []
for cls in compare.CLASSES:
    for p in compare.GUIDE_REGEXES[cls]:
        p = p.replace("(?i)", "").replace(r"\b", r"\y")
        parts.append(p)
print("|".join(parts))
PY
)
[ -n "$GUIDE_RE" ] || bdie "could not read the guide's regexes from compare.py"
case $GUIDE_RE in *'$re$'*) bdie "regex contains the quoting tag" ;; esac

blog "injection: (re)creating database $DB and loading $nsamples samples"
INSTALL_NOTE=""
TG_BENCH_DB=$DB fresh_bench_db
install_tg "$DB"
VERSION=$(tg_version "$DB")
case $VERSION in *"release build"*) ;; *) blog "WARNING: the server runs a non-release tradeguard build: $VERSION" ;; esac
bpsql "$DB" -c "CREATE TABLE s (n bigserial PRIMARY KEY, class text, set text, sample text)" >/dev/null
bpsql "$DB" -c "COPY s (class, set, sample) FROM STDIN" <"$WORK/samples.tsv" >/dev/null || bdie "loading the samples failed"
loaded=$(bval "$DB" "SELECT count(*) FROM s")
[ "$loaded" = "$nsamples" ] || bdie "loaded $loaded samples of $nsamples"

blog "injection: building $ROWS mixed values (the corpus samples repeated in order)"
bpsql "$DB" <<SQL >/dev/null
SET client_min_messages = warning;
CREATE TABLE t AS
  SELECT s.sample AS v, s.class
    FROM generate_series(1, ceil($ROWS::numeric / (SELECT count(*) FROM s))::int) g, s
   ORDER BY g, s.n
   LIMIT $ROWS;
VACUUM ANALYZE t;
SQL
mix=$(bval "$DB" "SELECT round(avg(length(v)), 1) || ' characters on average, ' || round(100.0 * count(*) FILTER (WHERE class <> 'benign') / count(*), 1) || '% attack samples' FROM t")

# ------------------------------------------------------------------ verdicts on the corpus
blog "injection: tradeguard verdicts on the corpus (is_attack(sample, 'auto'))"
corpus_ms=$(bval "$DB" "SET max_parallel_workers_per_gather = 0; SET jit = off; SELECT bench_ms('SELECT count(*) FILTER (WHERE tradeguard.is_attack(sample, ''auto'')) FROM s')")
bval "$DB" "COPY (SELECT CASE WHEN tradeguard.is_attack(sample, 'auto') THEN 1 ELSE 0 END FROM s ORDER BY n) TO STDOUT" >"$WORK/verdicts.txt" \
  || bdie "computing the verdicts failed"

blog "injection: libinjection and the regex list (compare.py; creates bench/.venv on first use)"
python3 "$COMPARE" --tradeguard-verdicts "$WORK/verdicts.txt" >"$WORK/compare.json" 2>"$WORK/compare.err" \
  || bdie "compare.py failed: $(tail -n 5 "$WORK/compare.err")"
cp "$WORK/compare.json" "$BENCH_OUT/$NAME.json"

# Cross-check of the SQL form of the regex list: samples matched by `~*` in PostgreSQL against
# samples matched by any of compare.py's Python regexes.
re_sql=$(bval "$DB" "SELECT count(*) FROM s WHERE sample ~* \$re\$$GUIDE_RE\$re\$")
re_py=$(python3 - "$BENCH_DIR/injection" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import compare
print(sum(compare.guide_any(s) for _, _, s in compare.load_samples(compare.default_corpus())))
PY
)

# ------------------------------------------------------------------ speed
blog "injection: timing is_attack vs ~* over $ROWS values, warm-up + $REPS runs each"
Q_TG="SELECT count(*) FILTER (WHERE tradeguard.is_attack(v)) FROM t"
Q_RE="SELECT count(*) FILTER (WHERE v ~* \$re\$$GUIDE_RE\$re\$) FROM t"
Q_SCAN="SELECT count(v) FROM t"
hits_tg=$(bval "$DB" "SET max_parallel_workers_per_gather = 0; $Q_TG")
hits_re=$(bval "$DB" "SET max_parallel_workers_per_gather = 0; $Q_RE")
RAW=$WORK/raw
{
  echo "SET max_parallel_workers_per_gather = 0;"
  echo "SET jit = off;"
  for ((r = 0; r <= REPS; r++)); do
    printf "SELECT 'tg', %d, bench_ms(\$q\$%s\$q\$);\n" "$r" "$Q_TG"
    printf "SELECT 're', %d, bench_ms(\$q\$%s\$q\$);\n" "$r" "$Q_RE"
    printf "SELECT 'scan', %d, bench_ms(\$q\$%s\$q\$);\n" "$r" "$Q_SCAN"
  done
} | bpsql "$DB" -At -F'|' >"$RAW"
median_of() { awk -F'|' -v l="$1" '$1 == l && $2 > 0 { print $3 }' "$RAW" | median; }
us() { calc "$(median_of "$1") * 1000 / $ROWS"; }
tg_us=$(us tg) re_us=$(us re) scan_us=$(us scan)

# ------------------------------------------------------------------ table
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
ratio=$(calc "$re_us / $tg_us")
row "speed: \`count(*) FILTER (WHERE tradeguard.is_attack(v))\`, $ROWS mixed values" "$(fmt "$tg_us" 3) µs/value" "guide regexes \`v ~* '...'\`: $(fmt "$re_us" 3) µs/value" "$(fmt "$ratio" 2)" "≤ 2 µs/value" "$(le "$tg_us" 2)"
row "speed net of the scan (informative; scan alone $(fmt "$scan_us" 3) µs/value)" "$(fmt "$(calc "$tg_us - $scan_us")" 3) µs/value" "$(fmt "$(calc "$re_us - $scan_us")" 3) µs/value" "$(fmt "$(calc "($re_us - $scan_us) / ($tg_us - $scan_us)")" 2)" "—" "—"
row "values flagged among the $ROWS (informative)" "$hits_tg" "regex: $hits_re" "—" "—" "—"
while IFS= read -r line; do rows+=("$line"); done < <(python3 - "$WORK/compare.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))
def pct(v):
    return "n/a" if v is None else "%.2f%%" % (100 * v)
det_target = {"sqli": 0.99, "xss": 0.98, "cmdi": 0.95, "traversal": 0.95}
for cls in ["sqli", "xss", "cmdi", "traversal", "mixed"]:
    r = res["detection"].get(cls)
    if not r:
        continue
    tg, li, rx = r.get("tradeguard"), r.get("libinjection"), r.get("regex_list")
    anchor = "libinjection: %s; regex list: %s" % (pct(li), pct(rx))
    ratio = "%.3f" % (tg / li) if tg is not None and li else "—"
    if cls == "mixed":
        print("| detection: src/ids/engine/samples/trading_attack.txt, every class (%d samples; written for tradeguard's tests, tuned on) | %s | %s | %s | — | — |" % (r["samples"], pct(tg), anchor, ratio))
        continue
    t = det_target[cls]
    met = "yes" if tg is not None and tg >= t else "no"
    print("| detection: attack/%s (%d samples) | %s | %s | %s | ≥ %g%% | %s |" % (cls, r["samples"], pct(tg), anchor, ratio, 100 * t, met))
fa = res["false_alarms"]
def cnt(r, k):
    v, n = r.get(k), r.get(k + "_count")
    return "n/a" if v is None else "%s (%d)" % (pct(v), n)
for name, label in [("trading-notes", "benign/trading-notes.txt"), ("trading-extra", "trading-extra (corpus_test.rs TRADING_BENIGN)"),
                    ("trading-samples", "src/ids/engine/samples/trading_benign.txt (written for tradeguard's tests, tuned on)"),
                    ("libinjection-fp", "benign/libinjection-false_positives.txt"), ("dict", "/usr/share/dict/american-english"),
                    ("fortunes", "fortunes (fortunes-min)")]:
    r = fa.get(name)
    if not r:
        print("| false alarms: %s | missing | — | — | — | no |" % label)
        continue
    tg, tgn = r.get("tradeguard"), r.get("tradeguard_count")
    li, lin = r.get("libinjection"), r.get("libinjection_count")
    anchor = "libinjection: %s; regex list: %s" % (cnt(r, "libinjection"), cnt(r, "regex_list"))
    if name == "trading-notes":
        target, met = "0", "yes" if tgn == 0 else "no"
    elif name in ("dict", "fortunes"):
        target, met = "≤ 0.1%", "yes" if tg is not None and tg <= 0.001 else "no"
    elif name == "libinjection-fp":
        target, met = "< libinjection", "yes" if tgn is not None and lin is not None and tgn < lin else "no"
    else:
        target, met = "—", "—"
    ratio = "%.2f" % (tgn / lin) if tgn is not None and lin else "—"
    print("| false alarms: %s (%d lines) | %s | %s | %s | %s | %s |" % (label, r["samples"], cnt(r, "tradeguard"), anchor, ratio, target, met))
PY
)
li_avail=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['notes']['libinjection_available'])" "$WORK/compare.json")

cp "$RAW" "$BENCH_OUT/$NAME.raw"
elapsed=$(( $(date +%s) - t_start ))
out=$BENCH_OUT/$NAME.md
{
  echo "### Injection check (bench/injection.sh)"
  echo
  echo "tradeguard: $VERSION.$INSTALL_NOTE Speed: medians of $REPS runs after a warm-up, one backend, no parallel"
  echo "workers, JIT off, timed in the server; $ROWS values = the $nsamples corpus samples repeated in order"
  echo "($mix). Ratio: regex time / tradeguard time (≥ 1: tradeguard faster). The guide's regexes are compare.py's"
  echo "17 patterns joined with \`|\` into one \`~*\` (\`(?i)\` dropped, \`\\b\` written \`\\y\`)."
  echo "Detection and false alarms: tradeguard's verdicts (\`is_attack(sample, 'auto')\` in the database) and"
  echo "libinjection (is_sql_injection for sqli, is_xss for xss; a false alarm when either fires; available: $li_avail)"
  echo "and the regex list, all from bench/injection/compare.py; ratio = tradeguard / libinjection."
  echo
  echo "| measure | tradeguard | anchor | ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Checks: $loaded samples loaded; regex list in SQL (\`~*\`) matches $re_sql samples, compare.py's Python regexes $re_py;"
  echo "is_attack over the $nsamples corpus samples took $(fmt "$corpus_ms" 0) ms. Raw runs: bench/out/$NAME.raw,"
  echo "compare.py output: bench/out/$NAME.json. Elapsed: ${elapsed}s."
} >"$out"
cat "$out"
