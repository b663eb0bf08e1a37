// Generation rows: insert, read, claim the oldest queued one, record progress and outcomes.
// Synchronous (better-sqlite3); the runner is pipeline/work/generation-runner.ts.

import { randomBytes } from "node:crypto";
import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import {
  ACTIVE_STATUSES,
  type GenerationRow,
  generations,
  type JobStatus,
  TERMINAL_STATUSES,
} from "./schema.ts";

export const newGenerationId = () => `gen_${randomBytes(12).toString("hex")}`;

export function insertGeneration(
  db: Db,
  g: {
    id: string;
    keyId: string | null;
    model: string;
    options: Record<string, unknown>;
    steps: number;
    idempotencyKey?: string | null;
    requestSha256?: string | null;
  },
): GenerationRow {
  return db.transaction((tx) => {
    const seq =
      tx
        .select({ n: sql<number>`coalesce(max(${generations.seq}), 0) + 1` })
        .from(generations)
        .get()?.n ?? 1;
    return tx
      .insert(generations)
      .values({ ...g, seq })
      .returning()
      .get();
  });
}

export function getGeneration(db: Db, id: string): GenerationRow | null {
  return db.select().from(generations).where(eq(generations.id, id)).get() ?? null;
}

export function generationsWithStatus(db: Db, status: JobStatus): GenerationRow[] {
  return db
    .select()
    .from(generations)
    .where(eq(generations.status, status))
    .orderBy(asc(generations.seq))
    .all();
}

/** Marks the oldest queued generation running (attempts + 1) and returns it. */
export function claimNextGeneration(db: Db): GenerationRow | null {
  return db.transaction((tx) => {
    const next = tx
      .select({ id: generations.id })
      .from(generations)
      .where(eq(generations.status, "queued"))
      .orderBy(asc(generations.seq))
      .limit(1)
      .get();
    if (!next) return null;
    return (
      tx
        .update(generations)
        .set({
          status: "running",
          step: 0,
          startedAt: new Date(),
          attempts: sql`${generations.attempts} + 1`,
        })
        .where(and(eq(generations.id, next.id), eq(generations.status, "queued")))
        .returning()
        .get() ?? null
    );
  });
}

export function setGeneration(
  db: Db,
  id: string,
  values: Partial<Omit<GenerationRow, "id" | "seq" | "createdAt">>,
): void {
  db.update(generations).set(values).where(eq(generations.id, id)).run();
}

/** Sets fields only while the generation is still running (a cancel wins over a late finish). */
export function finishGeneration(
  db: Db,
  id: string,
  values: Partial<Omit<GenerationRow, "id" | "seq" | "createdAt">>,
): boolean {
  return (
    db
      .update(generations)
      .set(values)
      .where(and(eq(generations.id, id), eq(generations.status, "running")))
      .returning({ id: generations.id })
      .all().length > 0
  );
}

export function cancelGeneration(db: Db, id: string): boolean {
  return (
    db
      .update(generations)
      .set({
        status: "canceled",
        finishedAt: new Date(),
        errorCode: "canceled",
        errorMessage: "canceled by request",
      })
      .where(and(eq(generations.id, id), inArray(generations.status, ACTIVE_STATUSES)))
      .returning({ id: generations.id })
      .all().length > 0
  );
}

/** The generation this API key made with this Idempotency-Key, if any. */
export function generationByIdempotencyKey(
  db: Db,
  keyId: string,
  idempotencyKey: string,
): GenerationRow | null {
  return (
    db
      .select()
      .from(generations)
      .where(and(eq(generations.keyId, keyId), eq(generations.idempotencyKey, idempotencyKey)))
      .get() ?? null
  );
}

/** Newest first; `beforeSeq` pages on. keyId null: every key's (admin). */
export function listGenerations(
  db: Db,
  filter: { keyId: string | null; status?: JobStatus; limit: number; beforeSeq?: number },
): GenerationRow[] {
  const conditions = [];
  if (filter.keyId !== null) conditions.push(eq(generations.keyId, filter.keyId));
  if (filter.status) conditions.push(eq(generations.status, filter.status));
  if (filter.beforeSeq !== undefined) conditions.push(lt(generations.seq, filter.beforeSeq));
  return db
    .select()
    .from(generations)
    .where(and(...conditions))
    .orderBy(desc(generations.seq))
    .limit(filter.limit)
    .all();
}

/** Generations with one of `statuses`, of one API key or (keyId undefined) of all. */
export function countGenerations(db: Db, statuses: readonly JobStatus[], keyId?: string): number {
  const conditions = [inArray(generations.status, statuses)];
  if (keyId !== undefined) conditions.push(eq(generations.keyId, keyId));
  return (
    db
      .select({ n: sql<number>`count(*)` })
      .from(generations)
      .where(and(...conditions))
      .get()?.n ?? 0
  );
}

/** Deletes a finished generation's row; false when it does not exist or is still active. */
export function deleteGeneration(db: Db, id: string): boolean {
  return (
    db
      .delete(generations)
      .where(and(eq(generations.id, id), inArray(generations.status, TERMINAL_STATUSES)))
      .returning({ id: generations.id })
      .all().length > 0
  );
}

/** Finished generations that finished before `before`, oldest first. */
export function finishedGenerationsBefore(db: Db, before: Date): string[] {
  return db
    .select({ id: generations.id })
    .from(generations)
    .where(and(inArray(generations.status, TERMINAL_STATUSES), lt(generations.finishedAt, before)))
    .orderBy(asc(generations.seq))
    .all()
    .map((r) => r.id);
}
