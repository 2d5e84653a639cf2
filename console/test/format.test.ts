import { describe, expect, it } from "vitest";

import { chartPoints, diff, drawdown, fmtMoney, fmtPct, fmtQty, isoFromEpochS, num, pushCapped, sparklinePath } from "../src/lib/format";

describe("numbers from the API (decimal strings or JSON numbers)", () => {
  it("reads both", () => {
    expect(num("1000.10")).toBe(1000.1);
    expect(num(1000.1)).toBe(1000.1);
    expect(num(null)).toBeNaN();
    expect(num("")).toBeNaN();
  });
  it("formats money, quantities and percentages", () => {
    expect(fmtMoney("10013.4921")).toBe("10,013.49");
    expect(fmtMoney(10013.4921)).toBe("10,013.49");
    expect(fmtMoney(null)).toBe("—");
    expect(fmtQty("0.00000001")).toBe("0.00000001");
    expect(fmtQty("0")).toBe("0");
    expect(fmtPct(0.1234)).toBe("12.34%");
    expect(fmtPct(undefined)).toBe("—");
  });
});

describe("chart points", () => {
  it("sorts out equal and older times and accepts strings", () => {
    const items = [
      { ts: "2024-01-01T00:00:00Z", equity: "10000" },
      { ts: "2024-01-01T00:00:00.500Z", equity: 10001 },
      { ts: "2024-01-01T00:01:00Z", equity: "10002.5" },
      { ts: "2023-12-31T00:00:00Z", equity: 1 },
      { ts: "2024-01-01T00:02:00Z", equity: null },
    ];
    expect(chartPoints(items, (p) => p.ts, (p) => p.equity)).toEqual([
      { time: 1704067200, value: 10001 },
      { time: 1704067260, value: 10002.5 },
    ]);
  });
  it("derives the drawdown", () => {
    const dd = drawdown([{ time: 1, value: 100 }, { time: 2, value: 120 }, { time: 3, value: 90 }, { time: 4, value: 130 }]);
    expect(dd.map((p) => p.value)).toEqual([0, 0, -0.25, 0]);
  });
  it("round-trips epoch seconds to RFC 3339", () => {
    expect(isoFromEpochS(1704067200)).toBe("2024-01-01T00:00:00Z");
  });
});

describe("diff", () => {
  it("lists leaf changes with dotted paths", () => {
    expect(diff({ name: "a", params: { fast: 10, slow: 30 }, labels: {} }, { name: "a", params: { fast: 12, slow: 30 }, labels: { team: "x" } }))
      .toEqual([{ path: "labels.team", before: undefined, after: "x" }, { path: "params.fast", before: 10, after: 12 }]);
    expect(diff([1, 2], [1, 2])).toEqual([]);
  });
});

describe("sparkline", () => {
  it("caps its samples and draws a path", () => {
    let values: number[] = [];
    for (let i = 0; i < 70; i++) values = pushCapped(values, i, 60);
    expect(values).toHaveLength(60);
    expect(values[0]).toBe(10);
    expect(sparklinePath([1], 80, 20)).toBe("");
    expect(sparklinePath([0, 10], 80, 20)).toBe("0.0,19.0 80.0,1.0");
  });
});
