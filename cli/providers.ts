import { providers } from "../providers/mod.ts";
import type { ProviderEnvVar } from "../core/provider.ts";
import type { ProviderFactory } from "../providers/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
import { printJson } from "./format.ts";
import { positionals } from "./options.ts";

/** `marketpipe providers`: what each provider needs and serves. Never prints secret values. */
export function runProviders(invocation: Invocation, context: CommandContext): Promise<number> {
  positionals(invocation, []);
  const list = Object.values(providers as Record<string, ProviderFactory>).map(({ info }) => ({
    name: info.name,
    description: info.description,
    status: info.status,
    env: info.env.map((v) => ({
      name: v.name,
      aliases: v.aliases ?? [],
      description: v.description,
      required: v.required,
      set: _isSet(context.env, v),
    })),
    ready: info.env.every((v) => !v.required || _isSet(context.env, v)),
    rateLimitPerMinute: info.rateLimitPerMinute ?? null,
    timeframes: info.timeframes,
    feeds: info.feeds,
    defaultFeed: info.defaultFeed,
    adjustments: info.adjustments,
    notes: info.notes ?? null,
  }));
  if (context.json) {
    printJson(context, list);
    return Promise.resolve(EXIT.ok);
  }
  for (const p of list) {
    const state = p.status === "retired"
      ? `retired${p.ready ? ", configured" : ""}`
      : p.ready
      ? "ready"
      : "needs credentials";
    context.out(`${p.name} (${state})`);
    context.out(`  ${p.description}`);
    if (p.env.length === 0) context.out("  env:        none needed");
    for (const v of p.env) {
      const aliases = v.aliases.length > 0 ? ` (or ${v.aliases.join(", ")})` : "";
      context.out(
        `  env:        ${v.name}${aliases} ${v.set ? "[set]" : "[not set]"}${
          v.required ? " (required)" : ""
        }: ${v.description}`,
      );
    }
    context.out(`  timeframes: ${p.timeframes.join(" ")}`);
    context.out(`  feeds:      ${p.feeds.join(", ")} (default ${p.defaultFeed})`);
    context.out(`  adjustment: ${p.adjustments.join(", ")}`);
    if (p.rateLimitPerMinute !== null) {
      context.out(`  rate limit: ${p.rateLimitPerMinute} requests/min (--rate-limit to change)`);
    }
    if (p.notes) context.out(`  notes:      ${p.notes}`);
    context.out("");
  }
  context.out(`${list.length} provider(s). Use: marketpipe ingest --provider NAME ...`);
  return Promise.resolve(EXIT.ok);
}

/** Whether a variable or one of its aliases is set to a non-empty value. Never reads it out. */
function _isSet(env: Record<string, string | undefined>, v: ProviderEnvVar): boolean {
  return [v.name, ...(v.aliases ?? [])].some((name) => (env[name] ?? "") !== "");
}
