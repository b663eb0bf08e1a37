// Following a job as it changes, the one mechanism behind `Prefer: wait` (on POST and GET) and
// the /events stream of every resource: both are woken by the runner's announcements
// (job-runner.ts subscribe), never by polling the database.

import { TERMINAL_STATUSES } from "../../store/schema.ts";
import type { JobWithItems, Store } from "../../store/store.ts";
import type { JobRunner } from "./job-runner.ts";

const TERMINAL = new Set<string>(TERMINAL_STATUSES);

export const isOver = (job: JobWithItems) => TERMINAL.has(job.job.status);

/**
 * The job once it is over, or as it is after `ms` (or when `signal` aborts: the client left);
 * null when it was deleted meanwhile.
 */
export async function waitForJob(
  runner: JobRunner,
  db: Store,
  id: string,
  ms: number,
  signal?: AbortSignal,
): Promise<JobWithItems | null> {
  const first = await db.getJob(id);
  if (!first || isOver(first) || ms <= 0 || signal?.aborted) return first;
  await new Promise<void>((resolve) => {
    let over = false;
    const done = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    // One read at a time; an announcement during a read asks for one more after it.
    let reading = false;
    let again = false;
    const check = () => {
      if (over) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      db.getJob(id)
        .then((now) => {
          if (!now || isOver(now)) done();
        })
        .catch(() => {})
        .finally(() => {
          reading = false;
          if (again) {
            again = false;
            check();
          }
        });
    };
    const unsubscribe = runner.subscribe(id, check);
    signal?.addEventListener("abort", done, { once: true });
    // It may have ended between the first read and the subscription.
    check();
  });
  return await db.getJob(id);
}

/**
 * The job now and after every change until it is over (the last value yielded is the finished
 * job), or until `signal` aborts or the job is deleted.
 */
export async function* watchJob(
  runner: JobRunner,
  db: Store,
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
      const job = await db.getJob(id);
      if (!job) return;
      yield job;
      if (isOver(job)) return;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", poke);
  }
}
