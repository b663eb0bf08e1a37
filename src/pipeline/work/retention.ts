// Deleting finished jobs and their files: DELETE on a job of any resource, and the retention sweep
// (DIFFUSABLE_RETENTION_DAYS) that deletes what finished longer ago than the setting. Active work
// is never deleted here (cancel it first).

import { rm } from "node:fs/promises";
import { TERMINAL_STATUSES } from "../../store/schema.ts";
import type { Store } from "../../store/store.ts";
import { generationsDir, outputsDir, uploadsDir } from "./datadir.ts";

/** Deletes a finished job's outputs, any upload left (and the folder generations made before
 * the one job model had), then its row; false if active or unknown. Files first: a crash in
 * between leaves a row that the next sweep or DELETE removes again, never files no row names,
 * and whoever sees the row gone sees the files gone. */
export async function deleteFinishedJob(db: Store, dataDir: string, id: string): Promise<boolean> {
  const found = await db.getJob(id);
  if (!found || !(TERMINAL_STATUSES as readonly string[]).includes(found.job.status)) return false;
  await rm(outputsDir(dataDir, id), { recursive: true, force: true });
  await rm(uploadsDir(dataDir, id), { recursive: true, force: true });
  await rm(generationsDir(dataDir, id), { recursive: true, force: true });
  return await db.deleteJob(id);
}

/** Deletes every job (generations included) that finished more than `days` days before `now`. */
export async function sweepRetention(
  db: Store,
  dataDir: string,
  days: number,
  now = new Date(),
): Promise<{ jobs: number }> {
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  let jobs = 0;
  for (const id of await db.finishedJobsBefore(cutoff)) {
    if (await deleteFinishedJob(db, dataDir, id)) jobs++;
  }
  return { jobs };
}

/**
 * Sweeps now and then periodically (every quarter of the retention period, between 1 s and 1 h)
 * while the server runs; returns the function that stops it. days <= 0: no sweeping.
 */
export function startRetention(
  db: Store,
  dataDir: string,
  days: number,
  log: (line: string) => void = () => {},
): () => void {
  if (!(days > 0)) return () => {};
  const everyMs = Math.min(3_600_000, Math.max(1000, (days * 86_400_000) / 4));
  let running = false;
  const sweep = () => {
    if (running) return;
    running = true;
    sweepRetention(db, dataDir, days)
      .then((n) => {
        if (n.jobs > 0) log(`diffusable: retention (${days} days): deleted ${n.jobs} job(s)`);
      })
      .catch((err: Error) => log(`diffusable: retention sweep failed: ${err.message}`))
      .finally(() => {
        running = false;
      });
  };
  sweep();
  const timer = setInterval(sweep, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
