/** A bot spec as the form edits it, and its conversions (pure, unit-tested). */
import type { Schemas } from "@gordon/manager-client";

export type ParamSchema = Schemas["ParamSchema"];
export type BotCreate = Schemas["BotCreate"];
export type BotUpdate = Schemas["BotUpdate"];

export interface SpecDraft {
  name: string;
  strategy: string;
  symbol: string;
  interval: string;
  mode: "paper" | "shadow" | "live";
  image: string;
  params: Record<string, unknown>;
  execution: Record<string, string>;
  labels: string;
  desiredState: "running" | "paused" | "stopped";
}

export function labelsToText(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join("\n");
}

export function textToLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) {
      continue;
    }
    const at = trimmed.indexOf("=");
    if (at <= 0) {
      out[trimmed] = "";
    } else {
      out[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
    }
  }
  return out;
}

export function draftFromBot(bot: Schemas["BotRead"]): SpecDraft {
  return {
    name: bot.name, strategy: bot.strategy, symbol: bot.symbol, interval: bot.interval, mode: bot.mode, image: bot.image,
    params: { ...bot.params }, execution: { ...bot.execution }, labels: labelsToText(bot.labels), desiredState: bot.desiredState,
  };
}

export function draftFromDefaults(defaults: Schemas["BotDefaults"]): SpecDraft {
  return {
    name: "", strategy: defaults.strategy, symbol: defaults.symbol, interval: defaults.interval, mode: defaults.mode,
    image: defaults.image, params: { ...defaults.params }, execution: { ...defaults.execution }, labels: "",
    desiredState: defaults.desiredState,
  };
}

/** The spec a PUT sends (everything but the desired state, which changes through the lifecycle actions). */
export function toUpdate(draft: SpecDraft): BotUpdate {
  return {
    name: draft.name.trim(), strategy: draft.strategy, symbol: draft.symbol.trim(), interval: draft.interval.trim(),
    mode: draft.mode, image: draft.image.trim() || null, params: draft.params, execution: draft.execution,
    labels: textToLabels(draft.labels),
  };
}

export function toCreate(draft: SpecDraft): BotCreate {
  return { ...toUpdate(draft), desiredState: draft.desiredState };
}

/** The comparable spec of a bot (what an edit can change), for the 412 diff. */
export function specOf(bot: Schemas["BotRead"]): BotUpdate {
  return toUpdate(draftFromBot(bot));
}

/** A form value for a parameter input, parsed by the schema's type. */
export function parseParam(schema: ParamSchema | undefined, raw: string | boolean): unknown {
  if (typeof raw === "boolean") {
    return raw;
  }
  const type = schema?.type ?? (schema?.anyOf?.find((s) => s.type && s.type !== "null")?.type ?? null);
  if (raw === "" && (schema?.anyOf?.some((s) => s.type === "null") || schema?.type === "null")) {
    return null;
  }
  if (type === "integer" || type === "number") {
    const n = Number(raw);
    return raw.trim() === "" || Number.isNaN(n) ? raw : n;
  }
  return raw;
}

/** The input a parameter gets. */
export function inputKind(schema: ParamSchema | undefined): "number" | "integer" | "boolean" | "enum" | "text" {
  if (!schema) {
    return "text";
  }
  if (schema.enum && schema.enum.length > 0) {
    return "enum";
  }
  const type = schema.type ?? schema.anyOf?.find((s) => s.type && s.type !== "null")?.type;
  if (type === "integer" || type === "number" || type === "boolean") {
    return type;
  }
  return "text";
}
