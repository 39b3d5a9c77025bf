/**
 * The scheduler on the web: the `/schedules` page (schedules, next runs, alerts, recent runs,
 * run now), `GET /api/schedules`, `GET /api/schedules/runs`, `POST /api/schedules/{name}/run`
 * and `GET /api/status` (freshness and failing schedules).
 *
 * @module
 */
import type { Hono } from "hono";
import type { ScheduleAlert, Scheduler } from "../app/scheduler.ts";
import { readStatus, scheduleRunJson, statusJson } from "../app/status.ts";
import { describeTrigger } from "../core/schedule.ts";
import type { MetaStore } from "../storage/mod.ts";
import {
  createScheduleStore,
  hasScheduleTables,
  type ScheduleRun,
} from "../storage/schedule_store.ts";
import { conflict, notFound } from "./errors.ts";
import { href, type Html, html } from "./html.ts";
import { checkKnownParams } from "./params.ts";
import { responders, viewOf } from "./services.ts";
import { parseQuery } from "./queries.ts";
import {
  empty,
  type LayoutContext,
  notice,
  statusBadge,
  tableHead,
  timeTag,
  type TimeZoneSetting,
} from "./views.ts";

/** What the schedule routes read. */
export interface ScheduleRoutesDeps {
  /** The server's metadata store (runs, lease, stored series). */
  meta: MetaStore;
  /**
   * The scheduler `serve` runs, read per request (it starts after the app is built); undefined
   * when the config has no schedules.
   */
  scheduler?: () => Scheduler | undefined;
  now: () => number;
  /** Page layout, as `createApp` builds it. */
  layout: LayoutContext;
}

/**
 * Mount the schedule page and API on `app` (call before `app.notFound`).
 *
 * @example
 * ```ts
 * registerSchedules(app, { meta: deps.store.meta, scheduler: () => deps.scheduler, now: context.now, layout });
 * const response = await app.request("/api/schedules");
 * ```
 */
export function registerSchedules(app: Hono, deps: ScheduleRoutesDeps): void {
  const { render } = responders(deps.layout);
  const schedulerOf = () => deps.scheduler?.();
  const runsOf = (schedule: string | undefined, limit: number): ScheduleRun[] =>
    hasScheduleTables(deps.meta)
      ? createScheduleStore(deps.meta).listRuns({ schedule, limit })
      : [];
  const latest = () =>
    hasScheduleTables(deps.meta)
      ? createScheduleStore(deps.meta).latestRuns()
      : new Map<string, ScheduleRun>();

  app.get("/api/schedules", (c) => {
    checkKnownParams(c.req.query(), []);
    const last = latest();
    const scheduler = schedulerOf();
    return c.json({
      holds_lease: scheduler?.holdsLease ?? false,
      schedules: (scheduler?.schedules() ?? []).map((state) => ({
        name: state.schedule.name,
        command: [state.schedule.command, ...state.schedule.args].join(" "),
        when: describeTrigger(state.schedule.when),
        overlap: state.schedule.overlap,
        catch_up: state.schedule.catchUp,
        retries: state.schedule.retries,
        next: _iso(state.next),
        busy: state.busy,
        queued: state.queued.map((t) => new Date(t).toISOString()),
        retry_at: _iso(state.retryAt),
        last_run: last.get(state.schedule.name)
          ? scheduleRunJson(last.get(state.schedule.name)!)
          : null,
      })),
      alerts: (scheduler?.alerts() ?? []).map(_alertJson),
    });
  });

  app.get("/api/schedules/runs", (c) => {
    const { schedule, limit } = parseQuery(c.req.query(), "GET /api/schedules/runs");
    return c.json({ runs: runsOf(schedule, limit).map(scheduleRunJson) });
  });

  app.post("/api/schedules/:name/run", async (c) => {
    checkKnownParams(c.req.query(), []);
    const name = c.req.param("name");
    const scheduler = schedulerOf();
    const state = scheduler?.schedules().find((s) => s.schedule.name === name);
    if (!scheduler || !state) throw notFound(`No schedule named ${JSON.stringify(name)}`);
    let run: ScheduleRun;
    try {
      ({ run } = await scheduler.runNow(name));
    } catch (error) {
      throw conflict((error as Error).message, error);
    }
    if (c.req.header("hx-request")) {
      return c.html(notice(`Started run ${run.id} of ${name}`, "ok").value, 202);
    }
    return c.json({ status: "started", run: scheduleRunJson(run) }, 202);
  });

  app.get("/api/status", (c) => {
    checkKnownParams(c.req.query(), []);
    const schedules = schedulerOf()?.schedules().map((s) => s.schedule);
    return c.json(statusJson(readStatus(deps.meta, { now: deps.now(), schedules })));
  });

  app.get("/schedules", (c) => {
    parseQuery(c.req.query(), "GET /schedules");
    const tz = viewOf(c).tz;
    const scheduler = schedulerOf();
    const states = scheduler?.schedules() ?? [];
    const last = latest();
    const runs = runsOf(undefined, 30);
    const body = html`
      <h1>Schedules</h1>
      ${scheduleBanner(scheduler?.alerts() ?? [], tz)}
      ${scheduler && !scheduler.holdsLease
        ? notice("Another server on this data directory holds the schedule lease: it runs them.")
        : ""}
      ${states.length === 0
        ? empty(
          html`No schedules configured: add a <code>schedules:</code> list to the config file`,
        )
        : html`
          <table>
            ${tableHead(["Name", "Command", "When", "Next (ET)", "Last run", ""])}
            <tbody>${states.map((state) => {
              const run = last.get(state.schedule.name);
              return html`
                <tr>
                  <td>${state.schedule.name}</td>
                  <td><code>${[state.schedule.command, ...state.schedule.args].join(
                    " ",
                  )}</code></td>
                  <td>${describeTrigger(state.schedule.when)}</td>
                  <td>${state.next === undefined ? "-" : timeTag(state.next, tz)}</td>
                  <td>${run
                    ? html`${statusBadge(run.status)} ${timeTag(run.plannedAt, tz)}`
                    : "never"}${state.retryAt === undefined ? "" : html`
                    · retry at ${timeTag(state.retryAt, tz)}
                  `}</td>
                  <td><button type="button" class="secondary" ${state.busy ? "disabled" : ""}
                                hx-post="${href(
                                  `/api/schedules/${encodeURIComponent(state.schedule.name)}/run`,
                                )}"
                                hx-target="#schedule-result" hx-swap="innerHTML">Run now</button></td>
                </tr>
              `;
            })}</tbody>
          </table>
          <div id="schedule-result"></div>
        `}
      <h2>Recent runs</h2>
      ${runs.length === 0 ? empty("No runs recorded yet") : _runsTable(runs, tz)}
    `;
    return render(c, "Schedules", "schedules", body);
  });
}

/**
 * A banner naming each schedule that failed on every attempt, or nothing: for the top of the
 * overview and the schedules page.
 */
export function scheduleBanner(
  alerts: readonly ScheduleAlert[],
  tz: TimeZoneSetting = "exchange",
): Html {
  if (alerts.length === 0) return html``;
  return notice(
    html`${
      alerts.map((alert) =>
        html`<div>Schedule <a href="/schedules">${alert.schedule}</a> ${alert.status} after ${alert.attempts} ${
          alert.attempts === 1 ? "attempt" : "attempts"
        } (run for ${timeTag(alert.plannedAt, tz)}): ${alert.error ?? ""}</div>`
      )
    }`,
    "error",
  );
}

function _runsTable(runs: readonly ScheduleRun[], tz: TimeZoneSetting): Html {
  return html`
    <table>
      ${tableHead(["#", "Schedule", "Status", "Trigger", "Try", "Planned", "Jobs", "Error"])}
      <tbody>${runs.map((run) =>
        html`
          <tr>
            <td>${run.id}</td>
            <td>${run.schedule}</td>
            <td>${statusBadge(run.status)}</td>
            <td>${run.trigger}</td>
            <td>${run.attempt}</td>
            <td>${timeTag(run.plannedAt, tz)}</td>
            <td>${run.jobIds.map((id) =>
              html`
                <a href="${href(`/jobs/${encodeURIComponent(id)}`)}">${id}</a>
              `
            )}</td>
            <td>${run.error ?? ""}</td>
          </tr>
        `
      )}</tbody>
    </table>
  `;
}

function _alertJson(alert: ScheduleAlert): Record<string, unknown> {
  return {
    schedule: alert.schedule,
    status: alert.status,
    attempts: alert.attempts,
    error: alert.error,
    planned_at: new Date(alert.plannedAt).toISOString(),
    at: new Date(alert.at).toISOString(),
  };
}

function _iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
