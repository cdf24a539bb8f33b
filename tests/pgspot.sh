#!/usr/bin/env bash
# Extension SQL lint: pgspot (PyPI, timescale/pgspot) on the installed install script.
# Every finding must match a line of tests/pgspot-allowlist.txt:
#     <code> <extended regex matched against the finding, "at line N" removed>  # <reason>
# A finding that matches no line fails the test, and so does an allowlist line that matches no
# finding (stale entries hide nothing new). pgspot is installed into $TG_TEST_DIR/venv.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh

SCRIPT=${TG_PGSPOT_SCRIPT:-/usr/share/postgresql/15/extension/tradeguard--0.1.0.sql}
ALLOW=tests/pgspot-allowlist.txt
VENV="$TG_TEST_DIR/venv"
OUT="$TG_TEST_DIR/pgspot.out"
mkdir -p "$TG_TEST_DIR"

if [ ! -x "$VENV/bin/pgspot" ]; then
  { [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"; } && "$VENV/bin/pip" install -q pgspot \
    || { echo "not ok - pgspot installed from PyPI into $VENV"; exit 1; }
fi
ok "pgspot $("$VENV/bin/pip" show pgspot 2>/dev/null | awk '/^Version:/ {print $2}') in $VENV"
[ -s "$SCRIPT" ] || { echo "not ok - installed script $SCRIPT exists"; exit 1; }

# pgspot 0.9.4 aborts at the first SQL-standard function body (`CREATE FUNCTION ... RETURN expr`,
# PostgreSQL 14+: IndexError in visit_CreateFunctionStmt) and silently skips the rest of the
# script. Lint a copy in which each such body is written as `AS $$ SELECT expr $$`: that is the
# conservative form (a string body is resolved at call time, a RETURN body at CREATE time), so
# pgspot checks the expression and reports anything it would report for the late-bound form.
INPUT="$TG_TEST_DIR/pgspot-input.sql"
n_std=$(python3 - "$SCRIPT" "$INPUT" <<'PY'
import re, sys
src = open(sys.argv[1], encoding="utf-8").read()
pat = re.compile(r"(CREATE (?:OR REPLACE )?FUNCTION [^;]*?\bLANGUAGE sql[^;]*?)\nRETURN (.*?);\n", re.S)
out, n = pat.subn(lambda m: f"{m.group(1)}\nAS $pgspot$ SELECT {m.group(2)} $pgspot$;\n", src)
left = len(re.findall(r"^(RETURN |BEGIN ATOMIC)", out, re.M))
open(sys.argv[2], "w", encoding="utf-8").write(out)
print(n if left == 0 else -left)
PY
)
if [ "${n_std:--1}" -lt 0 ]; then
  not_ok "every SQL-standard function body could be rewritten for pgspot (${n_std#-} left)"; exit 1
fi
ok "$n_std SQL-standard function bodies (RETURN expr) rewritten as AS \$\$ SELECT expr \$\$ for pgspot"

# pgspot exits 1 whenever it reports anything; the allowlist decides.
"$VENV/bin/pgspot" "$INPUT" > "$OUT" 2>&1
rc=$?
summary=$(grep -E 'Errors: [0-9]+ Warnings: [0-9]+ Unknown: [0-9]+' "$OUT" | tr -s ' ')
# Anything but findings, the summary and blank lines is pgspot giving up part-way.
aborted=$(grep -Ev '^\s*$|^\s*PS[0-9]{3}:|Errors: [0-9]+ Warnings: [0-9]+ Unknown: [0-9]+' "$OUT")
if [ -z "$summary" ] || [ -n "$aborted" ]; then
  not_ok "pgspot analysed the whole script (exit $rc): ${aborted:-no summary}"; exit 1
fi
ok "pgspot analysed the whole script:$summary"

python3 - "$OUT" "$ALLOW" <<'PY'
import re, sys
out, allow = sys.argv[1], sys.argv[2]
rules = []
for n, line in enumerate(open(allow, encoding="utf-8"), 1):
    line = line.rstrip("\n")
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    body, sep, reason = line.partition("  # ")
    code, _, pattern = body.strip().partition(" ")
    if not sep or not reason.strip() or not re.fullmatch(r"PS\d{3}", code) or not pattern.strip():
        print(f"not ok - {allow}:{n}: expected '<PSnnn> <regex>  # <reason>': {line}")
        sys.exit(1)
    rules.append([code, re.compile(pattern.strip()), n, 0])

findings = [l.strip() for l in open(out, encoding="utf-8") if re.match(r"\s*PS\d{3}:", l)]
bad = []
for f in findings:
    code = f.split(":", 1)[0]
    msg = re.sub(r"^PS\d{3}: ", "", re.sub(r" at line \d+$", "", f))
    hit = [r for r in rules if r[0] == code and r[1].search(msg)]
    for r in hit:
        r[3] += 1
    if not hit:
        bad.append(f)
status = 0
if bad:
    print(f"not ok - {len(bad)} of {len(findings)} pgspot finding(s) not in {allow}:")
    for f in bad:
        print("    " + f)
    status = 1
else:
    print(f"ok - all {len(findings)} pgspot finding(s) are explained in {allow}")
unused = [r for r in rules if r[3] == 0]
if unused:
    print(f"not ok - {len(unused)} allowlist line(s) match no finding (remove them):")
    for r in unused:
        print(f"    {allow}:{r[2]}: {r[0]} {r[1].pattern}")
    status = 1
else:
    print(f"ok - every allowlist line matches a finding ({len(rules)} lines)")
sys.exit(status)
PY
[ $? -eq 0 ] || fails=$((fails + 1))

echo
if [ "$fails" -gt 0 ]; then echo "pgspot: $fails check(s) failed; full output: $OUT"; exit 1; fi
echo "pgspot: all findings explained"
