/** What a command receives from `main.ts`: its environment and where to write. */
export interface CommandContext {
  /** Environment variables (main.ts is the only reader of `Deno.env`). */
  env: Record<string, string | undefined>;
  /** Write a line to standard output (results). */
  out: (line: string) => void;
  /** Write a line to standard error (progress, notes, warnings). */
  err: (line: string) => void;
  /** Redraw a status line in place on a terminal; undefined when stderr is not a terminal. */
  status?: (text: string) => void;
  /** Terminal width, when stdout is a terminal. */
  columns?: number;
  /** Aborted on Ctrl-C or SIGTERM. */
  signal: AbortSignal;
  verbose: boolean;
  json: boolean;
  /** Version of this build. */
  version: string;
}

/** Exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  partial: 3,
  interrupted: 130,
} as const;
