"""The CS236 probe's label draws side by side, read from its printed lines (benchmarks/results/probes/): for each
draw the final pass's test accuracy (binarised test images, and grey ones where the log has them), the pass with the
best validation accuracy, and the seconds the log records; then the mean and standard deviation (n - 1) over draws.

    python benchmarks/probes/cs236_draws.py benchmarks/results/probes/m2_cs236_recipe_decay_e80_2threads_s*.log
"""
import re
import statistics
import sys

LINE = re.compile(r"ep (\d+) val ([\d.]+) test ([\d.]+)(?: grey ([\d.]+))? loss \S+ t (\d+)s")


def read(path):
    rows = [m.groups() for m in map(LINE.match, open(path)) if m]
    if not rows:
        raise SystemExit(f"{path}: no 'ep N val ... test ...' lines: is it a log of m2_cs236_recipe.py?")
    passes = [int(r[0]) for r in rows]
    if passes != list(range(1, len(rows) + 1)):
        raise SystemExit(f"{path}: passes {passes[:3]}... are not 1, 2, 3, ...: a log of one uninterrupted run?")
    best = max(rows, key=lambda r: float(r[1]))  # the first pass with the highest validation accuracy
    last = rows[-1]
    return {"passes": len(rows), "test": float(last[2]), "grey": float(last[3]) if last[3] else None,
            "seconds": int(last[4]), "best_pass": int(best[0]), "best_test": float(best[2])}


def spread(values):
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else "n/a"


if __name__ == "__main__":
    draws = {path: read(path) for path in sys.argv[1:]}
    print("| log | passes | test (binarised) | test (grey) | best-validation pass: test | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for path, d in draws.items():
        grey = f"{d['grey']:.4f}" if d["grey"] is not None else ""
        print(f"| {path.rsplit('/', 1)[-1]} | {d['passes']} | {d['test']:.4f} | {grey} | "
              f"{d['best_pass']}: {d['best_test']:.4f} | {d['seconds']} |")
    tests = [d["test"] for d in draws.values()]
    greys = [d["grey"] for d in draws.values() if d["grey"] is not None]
    print(f"mean ± sd over {len(tests)} draws, binarised test images: {spread(tests)}")
    print(f"mean ± sd over {len(greys)} draws, grey test images: {spread(greys)}")
