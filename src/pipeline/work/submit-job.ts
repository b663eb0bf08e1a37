// Submitting a job of any kind: the one use case behind POST /v1/<resource> (and the admin page's
// sample videos). It replays a request whose
// Idempotency-Key this API key used before for this kind (422 when the request differs), lets
// the kind turn the checked request into its job (job-kinds.ts prepare: the model, the request's
// or the default one, default-model.ts), applies the quotas (per key and lane: queued + running; over all keys, for kinds that bound their queue: queued) and
// queues the job for the runner. Errors are AppErrors: 400 "invalid_field" naming the field, 404
// "unknown_model", 422 "idempotency_key_reused", 429 "too_many_jobs" / "queue_full" with
// Retry-After.

import { createHash } from "node:crypto";
import { AppError } from "../../app-error.ts";
import { ACTIVE_STATUSES } from "../../store/schema.ts";
import type { JobWithItems, Store } from "../../store/store.ts";
import type { ModelRuntime } from "../runtime.ts";
import { sha256File, uploadsDir } from "./datadir.ts";
import { JOB_KINDS } from "./job-kinds.ts";
import type { CommonFields, JobKind, PreparedJob, Upload } from "./kind-contract.ts";

export interface SubmitDeps {
  db: Store;
  runtime: ModelRuntime;
  dataDir: string;
  /** DIFFUSABLE_DEFAULT_MODEL, when set. */
  defaultModel: string | null;
  /** Most queued + running jobs of one kind per API key. */
  maxActivePerKey: number;
  /** Most queued jobs of a kind with limitQueue, over all keys. */
  maxQueued: number;
}

const retry = { headers: { "Retry-After": "10" } };

/** The kinds counted together against a key's quota: those of the kind's lane (autoencoder
 * jobs together, generations apart). */
const laneOf = (kind: JobKind) => JOB_KINDS.filter((k) => k.lane === kind.lane);

/** 429 when this key may not queue `count` more jobs of this kind's lane (or the kind's queue is
 * full). */
export async function checkQuota(
  deps: SubmitDeps,
  kind: JobKind,
  keyId: string | null,
  count = 1,
): Promise<void> {
  const lane = laneOf(kind);
  const kinds = lane.map((k) => k.name);
  const active = keyId === null ? 0 : await deps.db.countJobs(kinds, ACTIVE_STATUSES, keyId);
  if (active + count > deps.maxActivePerKey) {
    throw new AppError(
      "too_many_jobs",
      `this key has ${active} queued or running jobs (${lane.map((k) => k.resource).join(", ")}); the limit is ${deps.maxActivePerKey}`,
      429,
      retry,
    );
  }
  if (!kind.limitQueue) return;
  const queued = await deps.db.countJobs([kind.name], ["queued"]);
  if (queued + count > deps.maxQueued) {
    throw new AppError(
      "queue_full",
      `${queued} ${kind.resource} are queued; the limit is ${deps.maxQueued}`,
      429,
      retry,
    );
  }
}

/** Checks the quotas for these jobs of one kind, then queues them in order. (Two requests of
 * one key that arrive together may both pass the check: the quota is a bound on a key's work,
 * not a count kept to the job.) */
export async function queueJobs(
  deps: SubmitDeps,
  kind: JobKind,
  keyId: string | null,
  jobs: (PreparedJob & { id: string })[],
  request?: { idempotencyKey: string | null; requestSha256: string | null },
): Promise<JobWithItems[]> {
  await checkQuota(deps, kind, keyId, jobs.length);
  const queued: JobWithItems[] = [];
  for (const j of jobs) {
    queued.push(
      await deps.db.insertJob({
        id: j.id,
        kind: kind.name,
        keyId,
        model: j.model,
        options: j.options,
        items: j.items,
        steps: j.steps ?? null,
        ...(request ?? {}),
      }),
    );
  }
  return queued;
}

/** The sha256 of a request: its fields (webhook aside) and the sha256 of each file. */
async function requestHash(kind: JobKind, fields: CommonFields, uploads: Upload[]) {
  const { webhook: _, ...rest } = fields;
  const files = [];
  for (const u of uploads) files.push([u.field, await sha256File(u.path)]);
  return createHash("sha256")
    .update(JSON.stringify([kind.name, rest, files]))
    .digest("hex");
}

export interface Submission<F extends CommonFields> {
  kind: JobKind<F>;
  key: { id: string; role: string };
  /** The new job's id (its uploads are already in uploads/<id>/). */
  jobId: string;
  fields: F;
  uploads: Upload[];
  fromForm: boolean;
  idempotencyKey?: string | undefined;
}

/**
 * One request of one key: the job it queued, or (replayed: true) the one an earlier request of
 * this kind with the same Idempotency-Key queued. The caller removes the uploads of a refused or
 * replayed request.
 */
export async function submitJob<F extends CommonFields>(
  deps: SubmitDeps,
  s: Submission<F>,
): Promise<{ job: JobWithItems; replayed: boolean }> {
  const { kind, key, idempotencyKey } = s;
  // Only a request that may be retried under its key needs its hash (files are read for it).
  const requestSha256 =
    idempotencyKey === undefined ? null : await requestHash(kind as JobKind, s.fields, s.uploads);
  const replay = async () => {
    if (idempotencyKey === undefined) return null;
    const found = await deps.db.jobByIdempotencyKey(key.id, kind.name, idempotencyKey);
    if (found && found.job.requestSha256 !== requestSha256) {
      throw new AppError(
        "idempotency_key_reused",
        `Idempotency-Key "${idempotencyKey}" was used for a different request (${found.job.id})`,
        422,
      );
    }
    return found;
  };
  const earlier = await replay();
  if (earlier) return { job: earlier, replayed: true };
  const prepared = await kind.prepare(
    {
      db: deps.db,
      runtime: deps.runtime,
      dataDir: deps.dataDir,
      defaultModel: deps.defaultModel,
      key,
      jobId: s.jobId,
      inputDir: uploadsDir(deps.dataDir, s.jobId),
      fromForm: s.fromForm,
    },
    s.fields,
    s.uploads,
  );
  try {
    const [job] = await queueJobs(deps, kind as JobKind, key.id, [{ ...prepared, id: s.jobId }], {
      idempotencyKey: idempotencyKey ?? null,
      requestSha256,
    });
    return { job: job as JobWithItems, replayed: false };
  } catch (err) {
    // A concurrent retry with the same Idempotency-Key inserted first: answer with its job.
    const raced = err instanceof AppError ? null : await replay();
    if (!raced) throw err;
    return { job: raced, replayed: true };
  }
}
