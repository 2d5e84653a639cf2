import { describe, expect, it } from "vitest";

import { loadTokens, saveTokens, type TokenStorage } from "../src/lib/api";
import { parseRoute } from "../src/lib/router";
import { draftFromBot, inputKind, parseParam, textToLabels, toCreate, toUpdate } from "../src/lib/spec";
import { parseValues } from "../src/pages/Sweeps";
import { bot } from "./helpers";

describe("routes", () => {
  it("maps every page's URL", () => {
    expect(parseRoute("/")).toEqual({ page: "fleet" });
    expect(parseRoute("/ui/bots/42")).toEqual({ page: "bot", id: 42 });
    expect(parseRoute("/ui/bots/new")).toEqual({ page: "new-bot" });
    expect(parseRoute("/ui/deploys?bot=3")).toEqual({ page: "deploys" });
    expect(parseRoute("/ui/backtests?runs=4,5")).toEqual({ page: "backtests", ids: [4, 5] });
    expect(parseRoute("/ui/sweeps?id=7")).toEqual({ page: "sweeps", id: 7 });
    expect(parseRoute("/ui/sweeps?id=x")).toEqual({ page: "sweeps" });
    expect(parseRoute("/ui/sweeps")).toEqual({ page: "sweeps" });
    expect(parseRoute("/ui/risk/")).toEqual({ page: "risk" });
    expect(parseRoute("/ui/nope")).toEqual({ page: "not-found", path: "/ui/nope" });
  });
});

describe("the sweep form", () => {
  it("reads comma-separated values, numbers where they parse", () => {
    expect(parseValues("5, 10,20")).toEqual([5, 10, 20]);
    expect(parseValues(" ema , 0.5,")).toEqual(["ema", 0.5]);
    expect(parseValues("")).toEqual([]);
  });
});

describe("tokens", () => {
  it("live in the session storage only", () => {
    const data = new Map<string, string>();
    const store: TokenStorage = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v), removeItem: (k) => void data.delete(k) };
    expect(loadTokens(store)).toEqual({ operator: "", read: "" });
    saveTokens({ operator: "op", read: "" }, store);
    expect(loadTokens(store)).toEqual({ operator: "op", read: "" });
    saveTokens({ operator: "", read: "r" }, store);
    expect([...data.keys()]).toEqual(["gordon.readToken"]);
  });
});

describe("the bot form's spec", () => {
  it("parses parameters by their schema", () => {
    expect(parseParam({ type: "integer" }, "12")).toBe(12);
    expect(parseParam({ type: "number" }, "")).toBe("");
    expect(parseParam({ anyOf: [{ type: "number" }, { type: "null" }] }, "")).toBeNull();
    expect(parseParam({ type: "string" }, "x")).toBe("x");
    expect(parseParam({ type: "boolean" }, true)).toBe(true);
    expect(inputKind({ type: "integer" })).toBe("integer");
    expect(inputKind({ enum: ["a", "b"] })).toBe("enum");
    expect(inputKind({ anyOf: [{ type: "boolean" }, { type: "null" }] })).toBe("boolean");
    expect(inputKind(undefined)).toBe("text");
  });
  it("converts labels and drafts", () => {
    expect(textToLabels("replay.speed=50\n team = alpha \n\nflag")).toEqual({ "replay.speed": "50", team: "alpha", flag: "" });
    const draft = draftFromBot(bot(1, { labels: { "replay.speed": "50" } }));
    expect(toUpdate(draft)).toMatchObject({ name: "bot-1", labels: { "replay.speed": "50" }, image: "img" });
    expect(toUpdate(draft)).not.toHaveProperty("desiredState");
    expect(toCreate(draft)).toMatchObject({ desiredState: "stopped" });
  });
});
