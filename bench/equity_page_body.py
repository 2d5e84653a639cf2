"""What writing amounts as decimal strings costs an equity page (issue 15): the page body of 500 points
built as the API does (RFC 3339 times, decimal strings: `_rowjson.decimals` over orjson's digits) against
the same page with the floats as JSON numbers (the baseline, measured in the same run).

    .venv/bin/python bench/equity_page_body.py [--points 500] [--runs 3]

Prints, per run, the best of 5 timings of 500 builds each (µs per page) and the ratio; then the median
and the worst ratio of the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit

import numpy as np
import orjson

from gordon_manager import rowjson
from gordon_manager.runs import equity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.points
    rng = np.random.default_rng(7)
    stamps = np.arange(n, dtype=np.int64) * 60_000_000 + 1_709_251_200_000_000
    columns = [rng.uniform(9000, 11000, n), rng.uniform(0, 5000, n), rng.uniform(0, 0.2, n).round(8),
               rng.uniform(60000, 70000, n).round(2)]
    tail = b',"nextCursor":null}'

    def numbers() -> bytes:  # the baseline: the same page, amounts as JSON numbers
        texts = [rowjson.timestamps(stamps, b'","')]
        texts += [orjson.dumps(c, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] for c in columns]
        return rowjson.rows(equity._PREFIXES, tuple(texts), equity._SEPARATORS, b"}", n, head=b'{"items":',
                            tail=tail)

    def strings() -> bytes:  # what the API sends
        return equity.page_body(stamps, columns, None)

    print(f"{n}-point page, rowjson implementation {rowjson.IMPLEMENTATION}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratios = []
    for run in range(1, args.runs + 1):
        base = min(timeit.repeat(numbers, number=500, repeat=5)) / 500 * 1e6
        api = min(timeit.repeat(strings, number=500, repeat=5)) / 500 * 1e6
        ratios.append(api / base)
        print(f"run {run}: numbers {base:.1f} µs/page, decimal strings {api:.1f} µs/page, ratio {api / base:.2f}")
    print(f"ratio decimal strings / numbers: median {statistics.median(ratios):.2f}, worst {max(ratios):.2f}")


if __name__ == "__main__":
    main()
