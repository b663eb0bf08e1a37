// Following a job as it changes, the one mechanism behind `Prefer: wait` (on POST and GET) and
// the /events stream of every resource: both are woken by the runner's announcements
// (job-runner.ts subscribe), never by polling the database.

import type { Db } from "../../store/db.ts";
import { getJob, type JobWithItems } from "../../store/job-rows.ts";
import { TERMINAL_STATUSES } from "../../store/schema.ts";
import type { JobRunner } from "./job-runner.ts";

const TERMINAL = new Set<string>(TERMINAL_STATUSES);

export const isOver = (job: JobWithItems) => TERMINAL.has(job.job.status);

/**
 * The job once it is over, or as it is after `ms` (or when `signal` aborts: the client left);
 * null when it was deleted meanwhile.
 */
export function waitForJob(
  runner: JobRunner,
  db: Db,
  id: string,
  ms: number,
  signal?: AbortSignal,
): Promise<JobWithItems | null> {
  return new Promise((resolve) => {
    const first = getJob(db, id);
    if (!first || isOver(first) || ms <= 0 || signal?.aborted) return resolve(first);
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener("abort", done);
      resolve(getJob(db, id));
    };
    const timer = setTimeout(done, ms);
    const unsubscribe = runner.subscribe(id, () => {
      const now = getJob(db, id);
      if (!now || isOver(now)) done();
    });
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * The job now and after every change until it is over (the last value yielded is the finished
 * job), or until `signal` aborts or the job is deleted.
 */
export async function* watchJob(
  runner: JobRunner,
  db: Db,
  id: string,
  signal: AbortSignal,
): AsyncGenerator<JobWithItems> {
  let changed = true;
  let wake: (() => void) | null = null;
  const poke = () => {
    changed = true;
    wake?.();
  };
  const unsubscribe = runner.subscribe(id, poke);
  signal.addEventListener("abort", poke, { once: true });
  try {
    while (!signal.aborted) {
      if (!changed) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
        continue;
      }
      changed = false;
      const job = getJob(db, id);
      if (!job) return;
      yield job;
      if (isOver(job)) return;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", poke);
  }
}
