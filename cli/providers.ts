import { providers } from "../providers/mod.ts";
import type { ProviderFactory } from "../providers/mod.ts";
import type { Invocation } from "./args.ts";
import { type CommandContext, EXIT } from "./context.ts";
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
      description: v.description,
      required: v.required,
      set: (context.env[v.name] ?? "") !== "",
    })),
    ready: info.env.every((v) => !v.required || (context.env[v.name] ?? "") !== ""),
    timeframes: info.timeframes,
    feeds: info.feeds,
    defaultFeed: info.defaultFeed,
    adjustments: info.adjustments,
    notes: info.notes ?? null,
  }));
  if (context.json) {
    context.out(JSON.stringify(list, null, 2));
    return Promise.resolve(EXIT.ok);
  }
  for (const p of list) {
    const state = p.status === "retired" ? "retired" : p.ready ? "ready" : "needs credentials";
    context.out(`${p.name} (${state})`);
    context.out(`  ${p.description}`);
    if (p.env.length === 0) context.out("  env:        none needed");
    for (const v of p.env) {
      context.out(
        `  env:        ${v.name} ${v.set ? "[set]" : "[not set]"}${
          v.required ? " (required)" : ""
        }: ${v.description}`,
      );
    }
    context.out(`  timeframes: ${p.timeframes.join(" ")}`);
    context.out(`  feeds:      ${p.feeds.join(", ")} (default ${p.defaultFeed})`);
    context.out(`  adjustment: ${p.adjustments.join(", ")}`);
    if (p.notes) context.out(`  notes:      ${p.notes}`);
    context.out("");
  }
  context.out(`${list.length} provider(s). Use: marketpipe ingest --provider NAME ...`);
  return Promise.resolve(EXIT.ok);
}
