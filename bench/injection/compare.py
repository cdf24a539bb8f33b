#!/usr/bin/env python3
"""Compare injection detectors on the shared corpus.

Baselines computed here:
  * libinjection (PyPI package ``libinjection-python``): sqli via is_sql_injection,
    xss via is_xss;
  * "the guide's regex list": a naive IDS with one list of regexes per class, written
    the way a typical tutorial does it.
tradeguard's own column comes from ``--tradeguard-verdicts FILE`` (one 0/1 per sample,
in the order printed by ``--dump-samples``), computed inside PostgreSQL by the lead.

The script re-executes itself inside ``bench/.venv`` (created with ``python3 -m venv``
and ``pip install libinjection-python`` when missing). Standard library only otherwise.

Usage:
  compare.py [--corpus DIR] [--tradeguard-verdicts FILE] [--markdown]
  compare.py --dump-samples > samples.tsv
"""

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(REPO, "bench", ".venv")
VENV_PY = os.path.join(VENV, "bin", "python")
DICT = "/usr/share/dict/american-english"
FORTUNES = "/usr/share/games/fortunes"
CLASSES = ["sqli", "xss", "cmdi", "traversal"]


def ensure_venv(need_libinjection):
    """Re-exec inside bench/.venv, creating it (and installing libinjection) if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(VENV_PY):
        subprocess.check_call([sys.executable, "-m", "venv", VENV], stdout=sys.stderr)
    if need_libinjection:
        probe = subprocess.run([VENV_PY, "-c", "import libinjection"], capture_output=True)
        if probe.returncode != 0:
            r = subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "libinjection-python"], stdout=sys.stderr, stderr=sys.stderr)
            if r.returncode != 0:
                print("warning: pip install libinjection-python failed; libinjection column will be missing", file=sys.stderr)
    os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])


# ----------------------------------------------------------------------------- corpus

def default_corpus():
    env = os.environ.get("TG_CORPUS_DIR")
    if env:
        return env
    for cand in (os.path.join(REPO, "..", "shared", "corpus"), "/work/shared/corpus"):
        if os.path.isdir(os.path.join(cand, "attack")):
            return os.path.abspath(cand)
    return os.path.abspath(os.path.join(REPO, "..", "shared", "corpus"))


def read_lines(path, url_encoded):
    """Same rules as the Rust corpus test: one sample per line, skip empty lines and
    lines starting with '#'; URL-encoded files are decoded once ('+' is a space)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    out = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip() or line.startswith("#"):
            continue
        if url_encoded:
            line = urllib.parse.unquote_plus(line, errors="replace")
        out.append(line)
    return out


def trading_extra():
    """The extra benign trading-system values kept in the Rust corpus test."""
    path = os.path.join(REPO, "src", "ids", "engine", "corpus_test.rs")
    try:
        src = open(path, encoding="utf-8").read()
    except OSError:
        return []
    m = re.search(r"TRADING_BENIGN: &\[&str\] = &\[(.*?)\n\];", src, re.S)
    if not m:
        return []
    vals = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)):
        vals.append(re.sub(r"\\(.)", lambda x: {"n": "\n", "t": "\t", "0": "\0"}.get(x.group(1), x.group(1)), lit))
    return vals


def load_samples(corpus):
    """Returns a list of (class, set, sample); class is 'benign' for benign sets."""
    samples = []
    for cls in CLASSES:
        d = os.path.join(corpus, "attack", cls)
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if not os.path.isfile(p):
                continue
            stem = name[:-4] if name.endswith(".txt") else name
            for s in read_lines(p, name.startswith("libinjection")):
                samples.append((cls, stem, s))
    for s in read_lines(os.path.join(corpus, "benign", "trading-notes.txt"), False):
        samples.append(("benign", "trading-notes", s))
    for s in trading_extra():
        samples.append(("benign", "trading-extra", s))
    # Written for tradeguard's own tests (src/ids/engine/samples/, tuned on: every note passes and
    # every attack is caught by construction); shown for the anchors' figures on trading text.
    sdir = os.path.join(REPO, "src", "ids", "engine", "samples")
    for s in read_lines(os.path.join(sdir, "trading_benign.txt"), False):
        samples.append(("benign", "trading-samples", s))
    for s in read_lines(os.path.join(sdir, "trading_attack.txt"), False):
        samples.append(("mixed", "trading-attacks", s))
    for s in read_lines(os.path.join(corpus, "benign", "libinjection-false_positives.txt"), True):
        samples.append(("benign", "libinjection-fp", s))
    if os.path.isfile(DICT):
        for s in read_lines(DICT, False):
            samples.append(("benign", "dict", s))
    else:
        print("warning: %s missing (apt-get install wamerican)" % DICT, file=sys.stderr)
    if os.path.isdir(FORTUNES):
        for name in sorted(os.listdir(FORTUNES)):
            p = os.path.join(FORTUNES, name)
            if not os.path.isfile(p) or name.endswith(".dat") or name.endswith(".u8"):
                continue
            for s in read_lines(p, False):
                if s.strip() != "%":
                    samples.append(("benign", "fortunes", s))
    else:
        print("warning: %s missing (apt-get install fortunes-min)" % FORTUNES, file=sys.stderr)
    return samples


def escape_field(s):
    """PostgreSQL COPY text escaping. NUL cannot be stored in a PostgreSQL text value, so
    it is written URL-encoded as %00 (tradeguard decodes it back)."""
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace("\0", "%00")


# ----------------------------------------------------------------------------- detectors

# "The guide's regex list": what a typical tutorial tells you to put in front of a form.
GUIDE_REGEXES = {
    "sqli": [
        r"(?i)(union|select|insert|update|delete|drop|alter|create|exec|--|;|')",
        r"(?i)\b(or|and)\b\s+\d+\s*=\s*\d+",
        r"(?i)(sleep\(|benchmark\(|waitfor\s+delay)",
        r"/\*.*\*/",
    ],
    "xss": [
        r"(?i)<script",
        r"(?i)javascript:",
        r"(?i)onerror\s*=",
        r"(?i)onload\s*=",
        r"(?i)<iframe",
        r"(?i)document\.cookie",
        r"(?i)alert\(",
    ],
    "cmdi": [
        r";",
        r"\|",
        r"&&",
        r"\$\(",
        r"`",
    ],
    "traversal": [
        r"\.\./",
        r"\.\.\\",
        r"(?i)/etc/passwd",
    ],
}
GUIDE = {c: [re.compile(p) for p in ps] for c, ps in GUIDE_REGEXES.items()}


def guide_class(sample, cls):
    return any(r.search(sample) for r in GUIDE[cls])


def guide_any(sample):
    return any(guide_class(sample, c) for c in CLASSES)


def make_libinjection():
    try:
        import libinjection  # noqa: F401
    except Exception as e:  # pragma: no cover
        print("warning: libinjection not importable: %s" % e, file=sys.stderr)
        return None

    def call(fn, key, s):
        try:
            r = fn(s)
        except Exception:
            try:
                r = fn(s.encode("utf-8", "replace"))
            except Exception:
                return False
        if isinstance(r, dict):
            return bool(r.get(key))
        return bool(r)

    def sqli(s):
        return call(libinjection.is_sql_injection, "is_sqli", s)

    def xss(s):
        return call(libinjection.is_xss, "is_xss", s)

    return sqli, xss


# ----------------------------------------------------------------------------- report

def rate(hits, total):
    return round(hits / total, 5) if total else None


def compute(samples, verdicts):
    li = make_libinjection()
    groups = {}  # key -> list of indices
    for i, (cls, st, _) in enumerate(samples):
        key = ("attack", cls) if cls != "benign" else ("benign", st)
        groups.setdefault(key, []).append(i)

    li_sqli = li_xss = None
    if li:
        li_sqli = [li[0](s) for _, _, s in samples]
        li_xss = [li[1](s) for _, _, s in samples]

    result = {"corpus_samples": len(samples), "detection": {}, "false_alarms": {}}
    for (kind, name), idx in sorted(groups.items()):
        row = {"samples": len(idx)}
        if kind == "attack":
            # "mixed": attacks of every class in one set (any detector of the tool counts)
            g = sum(guide_any(samples[i][2]) if name == "mixed" else guide_class(samples[i][2], name) for i in idx)
            row["regex_list"] = rate(g, len(idx))
            if li:
                if name == "sqli":
                    row["libinjection"] = rate(sum(li_sqli[i] for i in idx), len(idx))
                elif name == "xss":
                    row["libinjection"] = rate(sum(li_xss[i] for i in idx), len(idx))
                elif name == "mixed":
                    row["libinjection"] = rate(sum(li_sqli[i] or li_xss[i] for i in idx), len(idx))
                else:
                    row["libinjection"] = None  # no detector for this class
                row["libinjection_any"] = rate(sum(li_sqli[i] or li_xss[i] for i in idx), len(idx))
            if verdicts is not None:
                row["tradeguard"] = rate(sum(verdicts[i] for i in idx), len(idx))
            result["detection"][name] = row
        else:
            g = sum(guide_any(samples[i][2]) for i in idx)
            row["regex_list"] = rate(g, len(idx))
            row["regex_list_count"] = g
            if li:
                c = sum(li_sqli[i] or li_xss[i] for i in idx)
                row["libinjection"] = rate(c, len(idx))
                row["libinjection_count"] = c
            if verdicts is not None:
                c = sum(verdicts[i] for i in idx)
                row["tradeguard"] = rate(c, len(idx))
                row["tradeguard_count"] = c
            result["false_alarms"][name] = row
    result["notes"] = {
        "detection": "share of attack lines flagged; libinjection: is_sql_injection for sqli, is_xss for xss, "
        "libinjection_any = flagged by either; regex_list: that class's regex list",
        "false_alarms": "share of benign lines flagged by any detector of the tool",
        "libinjection_available": bool(li),
    }
    return result


def fmt(v):
    if v is None:
        return "n/a"
    return "%.2f%%" % (100 * v)


def markdown(res):
    has_tg = any("tradeguard" in r for r in list(res["detection"].values()) + list(res["false_alarms"].values()))
    cols = ["samples", "libinjection", "regex_list"] + (["tradeguard"] if has_tg else [])
    out = ["| attack class (detection, higher is better) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in res["detection"].items():
        out.append("| %s | %d | %s |" % (name, r["samples"], " | ".join(fmt(r.get(c)) for c in cols[1:])))
    out.append("")
    out.append("| benign set (false alarms, lower is better) | " + " | ".join(cols) + " |")
    out.append("|---" * (len(cols) + 1) + "|")
    for name, r in res["false_alarms"].items():
        cells = []
        for c in cols[1:]:
            v = r.get(c)
            n = r.get(c + "_count")
            cells.append(fmt(v) + ("" if n is None else " (%d)" % n))
        out.append("| %s | %d | %s |" % (name, r["samples"], " | ".join(cells)))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=default_corpus(), help="corpus dir (default: $TG_CORPUS_DIR or ../shared/corpus)")
    ap.add_argument("--tradeguard-verdicts", metavar="FILE", help="one 0/1 per sample, in --dump-samples order")
    ap.add_argument("--dump-samples", action="store_true", help="print class<TAB>set<TAB>sample (COPY text escaping) and exit")
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown (after the JSON)")
    ap.add_argument("--no-venv", action="store_true", help="run with the current interpreter")
    args = ap.parse_args()
    if not args.no_venv:
        ensure_venv(need_libinjection=not args.dump_samples)

    if not os.path.isdir(os.path.join(args.corpus, "attack")):
        sys.exit("corpus not found at %s (use --corpus or TG_CORPUS_DIR)" % args.corpus)
    samples = load_samples(args.corpus)
    if args.dump_samples:
        w = sys.stdout
        for cls, st, s in samples:
            w.write("%s\t%s\t%s\n" % (cls, st, escape_field(s)))
        return
    verdicts = None
    if args.tradeguard_verdicts:
        with open(args.tradeguard_verdicts) as f:
            verdicts = [int(x.strip()) != 0 for x in f if x.strip()]
        if len(verdicts) != len(samples):
            sys.exit("--tradeguard-verdicts has %d values for %d samples" % (len(verdicts), len(samples)))
    res = compute(samples, verdicts)
    print(json.dumps(res, indent=2))
    if args.markdown:
        print()
        print(markdown(res))


if __name__ == "__main__":
    main()
