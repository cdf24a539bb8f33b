#!/usr/bin/env python3
"""Plot the audit benchmark's TPS by client count (bench/out/audit_tps.csv -> PNG).

Usage: plot.py [CSV] [PNG]   (defaults: bench/out/audit_tps.csv, bench/out/audit_tps.png)

The CSV (written by bench/audit.sh) has the columns mode,config,clients,tps; mode is `sync`
(the cluster's synchronous_commit) or `async` (CPU-bound runs). One panel per mode, one line per
configuration. Runs inside bench/.venv and installs matplotlib there when missing (PyPI); when
that is not possible it says so and exits 0 (the plot is optional).
"""

import csv
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv")
VENV_PY = os.path.join(VENV, "bin", "python")
LABELS = {"none": "no trigger", "tg": "tradeguard audit_table", "plpgsql": "PL/pgSQL jsonb trigger"}
MODES = {"sync": "synchronous_commit as configured", "async": "CPU-bound (synchronous_commit=off)"}


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        try:
            if not os.path.exists(VENV_PY):
                subprocess.check_call([sys.executable, "-m", "venv", VENV], stdout=sys.stderr)
            probe = subprocess.run([VENV_PY, "-c", "import matplotlib"], capture_output=True)
            if probe.returncode != 0:
                subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "matplotlib"], stdout=sys.stderr, stderr=sys.stderr)
            os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])
        except (OSError, subprocess.CalledProcessError) as e:
            print("plot.py: no matplotlib (%s); no plot" % e, file=sys.stderr)
            return False
    print("plot.py: matplotlib could not be installed into bench/.venv; no plot", file=sys.stderr)
    return False


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out", "audit_tps.csv")
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "out", "audit_tps.png")
    if not os.path.exists(src):
        print("plot.py: %s not found (run bench/audit.sh first)" % src, file=sys.stderr)
        return 0
    if not ensure_matplotlib():
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {}  # mode -> config -> [(clients, tps)]
    with open(src) as f:
        for r in csv.DictReader(f):
            data.setdefault(r["mode"], {}).setdefault(r["config"], []).append((int(r["clients"]), float(r["tps"])))
    modes = [m for m in MODES if m in data]
    if not modes:
        print("plot.py: no data in %s" % src, file=sys.stderr)
        return 0
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for cfg in ("none", "tg", "plpgsql"):
            pts = sorted(data[mode].get(cfg, []))
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", label=LABELS[cfg])
            for x, y in pts:
                ax.annotate("%.0f" % y, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_title("pgbench INSERT+UPDATE, " + MODES[mode], fontsize=9)
        ax.set_xlabel("clients")
        ax.set_ylabel("transactions per second")
        ax.set_xticks(sorted({c for pts in data[mode].values() for c, _ in pts}))
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("tradeguard audit trail: TPS by client count (bench/audit.sh)", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print("plot.py: wrote %s" % dst, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
