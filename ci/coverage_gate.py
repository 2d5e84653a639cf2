"""Fail the build below 80% overall or below 90% on the safety-critical modules.

Safety-critical: operator-token auth and the edge (hosts, origins, tokens, limits), the reconciler, deploys, execution, the risk proxies and the bot
runner (real money flows through it).
Reads the JSON report written by pytest-cov (`--cov-report=json:PATH`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OVERALL_MIN = 80.0
CRITICAL_MIN = 90.0
CRITICAL_PREFIXES = (
    "src/gordon_manager/http/auth.py",
    "src/gordon_manager/http/edge.py",
    "src/gordon_manager/http/protocol.py",
    "src/gordon_manager/reconcile/",
    "src/gordon_manager/deploys/",
    "src/gordon_manager/execution/",
    "src/gordon_manager/proxies/risk",
    "src/gordon_manager/botrunner/",
)


def main(path: str) -> int:
    report = json.loads(Path(path).read_text())
    overall = report["totals"]["percent_covered"]
    failures: list[str] = []
    if overall < OVERALL_MIN:
        failures.append(f"overall coverage {overall:.1f}% < {OVERALL_MIN}%")
    groups: dict[str, list[int]] = {}
    for name, data in report["files"].items():
        rel = name[name.index("src/"):] if "src/" in name else "src/" + name
        for prefix in CRITICAL_PREFIXES:
            if rel.startswith(prefix):
                covered, total = groups.setdefault(prefix, [0, 0])
                groups[prefix] = [covered + data["summary"]["covered_lines"], total + data["summary"]["num_statements"]]
    print(f"coverage: overall {overall:.1f}% (gate {OVERALL_MIN}%)")
    for prefix, (covered, total) in sorted(groups.items()):
        pct = 100.0 * covered / total if total else 100.0
        print(f"coverage: {prefix:40s} {pct:5.1f}% (gate {CRITICAL_MIN}%)")
        if pct < CRITICAL_MIN:
            failures.append(f"{prefix} coverage {pct:.1f}% < {CRITICAL_MIN}%")
    for failure in failures:
        print(f"coverage gate FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "coverage.json"))
