// Deleting finished work and its files: DELETE on a job or a generation, and the retention sweep
// (DIFFUSABLE_RETENTION_DAYS) that deletes what finished longer ago than the setting. Active work
// is never deleted here (cancel it first).

import { rm } from "node:fs/promises";
import type { Db } from "../../store/db.ts";
import {
  deleteGeneration,
  finishedGenerationsBefore,
  getGeneration,
} from "../../store/generation-rows.ts";
import { deleteJob, finishedJobsBefore, getJob } from "../../store/job-rows.ts";
import { generationsDir, outputsDir, uploadsDir } from "./datadir.ts";

/** Deletes a finished job's row, its outputs and any upload left; false if active or unknown. */
export async function deleteFinishedJob(db: Db, dataDir: string, id: string): Promise<boolean> {
  if (!getJob(db, id) || !deleteJob(db, id)) return false;
  await rm(outputsDir(dataDir, id), { recursive: true, force: true });
  await rm(uploadsDir(dataDir, id), { recursive: true, force: true });
  return true;
}

/** Deletes a finished generation's row and its outputs; false if active or unknown. */
export async function deleteFinishedGeneration(
  db: Db,
  dataDir: string,
  id: string,
): Promise<boolean> {
  if (!getGeneration(db, id) || !deleteGeneration(db, id)) return false;
  await rm(generationsDir(dataDir, id), { recursive: true, force: true });
  return true;
}

/** Deletes every job and generation that finished more than `days` days before `now`. */
export async function sweepRetention(
  db: Db,
  dataDir: string,
  days: number,
  now = new Date(),
): Promise<{ jobs: number; generations: number }> {
  const cutoff = new Date(now.getTime() - days * 86_400_000);
  let jobs = 0;
  let generations = 0;
  for (const id of finishedJobsBefore(db, cutoff)) {
    if (await deleteFinishedJob(db, dataDir, id)) jobs++;
  }
  for (const id of finishedGenerationsBefore(db, cutoff)) {
    if (await deleteFinishedGeneration(db, dataDir, id)) generations++;
  }
  return { jobs, generations };
}
