#!/usr/bin/env python3
"""Oracle for rollgate's Mann-Whitney test: reads cases as JSON on stdin
([{"x": [...], "y": [...]}, ...]) and writes scipy's answers as JSON
([{"u": U of x, "p": two-sided p}, ...]), with the normal approximation,
tie correction and continuity correction that Kayenta uses."""
import json
import sys

from scipy.stats import mannwhitneyu

cases = json.load(sys.stdin)
out = []
for case in cases:
    r = mannwhitneyu(case["x"], case["y"], use_continuity=True, alternative="two-sided", method="asymptotic")
    out.append({"u": float(r.statistic), "p": float(r.pvalue)})
json.dump(out, sys.stdout)
