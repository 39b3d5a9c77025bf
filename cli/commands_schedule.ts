/**
 * Command table entries of `schedule` and `status`, spliced into `COMMANDS` in
 * `cli/commands.ts`.
 *
 * @module
 */
import type { CommandSpec } from "./args.ts";

/** `schedule list|next|run|history` and `status`. */
export const SCHEDULE_COMMANDS: CommandSpec[] = [
  {
    name: "schedule",
    summary: "Show the config file's schedules, their next runs and history, or run one now",
    description: [
      "Schedules live in the config file's schedules: list and run inside marketpipe serve: each",
      "has a name, a command (update, backfill, aggregate, validate, prune, symbols update,",
      'compact), args, and when: a cron expression in a time zone ({cron: "30 16 * * 1-5", tz:',
      "America/New_York}) or a calendar trigger ({after-close: 30m}, {after-post: 15m} after the",
      "after-hours session, when the day's 1m bars are complete, {before-open: 15m}: every NYSE",
      "session, early closes followed, never on holidays). overlap: skip|queue, catch-up:",
      "latest|all|none, retries: N with backoff: 5m (doubled per retry). notify: {url: ...}",
      "receives a JSON POST on failed or partial runs and on newly stale series.",
    ].join("\n"),
    subcommands: [
      {
        name: "list",
        summary: "List the schedules with their trigger, policies, next run and last run",
        examples: ["marketpipe schedule list --config marketpipe.yaml"],
        run: () => import("./schedule.ts").then((m) => m.runScheduleList),
      },
      {
        name: "next",
        summary: "Show the next fire times of each schedule (or NAME) in New York time",
        args: "[NAME]",
        options: [
          {
            name: "count",
            short: "n",
            type: "string",
            placeholder: "N",
            description: "Fire times per schedule, 1-1000",
            default: "5",
            configurable: false,
          },
        ],
        examples: [
          "marketpipe schedule next --config marketpipe.yaml",
          "marketpipe schedule next nightly-update --count 10",
        ],
        run: () => import("./schedule.ts").then((m) => m.runScheduleNext),
      },
      {
        name: "run",
        summary: "Run a schedule's command now, once, recorded like a scheduled run",
        args: "NAME",
        examples: ["marketpipe schedule run nightly-update --config marketpipe.yaml"],
        run: () => import("./schedule.ts").then((m) => m.runScheduleRun),
      },
      {
        name: "history",
        summary: "List recorded schedule runs, newest first",
        args: "[NAME]",
        options: [
          {
            name: "limit",
            short: "l",
            type: "string",
            placeholder: "N",
            description: "Maximum runs to show",
            default: "20",
            configurable: false,
          },
        ],
        examples: [
          "marketpipe schedule history",
          "marketpipe schedule history nightly-update --json",
        ],
        run: () => import("./schedule.ts").then((m) => m.runScheduleHistory),
      },
    ],
  },
  {
    name: "status",
    summary: "Show stale series and failing schedules (exit 1 with --fail-on, for monitoring)",
    description: [
      "A series is stale when a session after its last stored trading date has ended (the",
      "regular close for 1d bars, 20:00 New York for intraday; early closes included) more than",
      "--grace ago. A schedule is failing when its last recorded run failed or was partial (a",
      "retry may still be pending). With --fail-on stale, failed or stale,failed it exits 1 when",
      "that is found.",
    ].join("\n"),
    options: [
      {
        name: "fail-on",
        type: "string",
        placeholder: "WHAT",
        description: "Exit 1 on stale series, failed schedules, or both (stale,failed)",
        configurable: false,
      },
      {
        name: "grace",
        type: "string",
        placeholder: "AGE",
        description: "How long after a session ends its bars may be missing (e.g. 2h)",
        default: "0m",
      },
    ],
    examples: [
      "marketpipe status",
      "marketpipe status --fail-on stale,failed --grace 2h   # in a health check",
    ],
    run: () => import("./status.ts").then((m) => m.runStatus),
  },
];
