// What a kind of job is (the entries of job-kinds.ts, the one list every layer reads): its
// names (stored kind, URL segment, id prefix), its request (schemas, file fields), the checks of
// each uploaded file before the 202, how a checked request becomes a job (model, options, items),
// its output roles (the download routes), and the function that runs it. Also the context the
// runner (job-runner.ts) gives that function, and perItem, which makes one from a function that
// runs one item.

import { existsSync } from "node:fs";
import type { z } from "zod";
import type { JobItemRow, JobRow, NewItem, Store } from "../../store/store.ts";
import type { DenoiserBatcher } from "../generate/batcher.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";

/** What one item produced. */
export interface ItemResult {
  /** Output files by role (one of the kind's output roles, or "metadata"). */
  outputs: Record<string, string>;
  /** sha256 of the main output (latents or video). */
  sha256: string;
  metadata: Record<string, unknown> | null;
}

/** What the runner hands a kind's run function. Every write goes through it, so that waiting
 * requests and event streams hear of each change. */
export interface RunContext {
  runtime: ModelRuntime;
  dataDir: string;
  /** Shared denoiser calls of the running generations. */
  batcher: DenoiserBatcher;
  job: JobRow;
  /** Every item of the job; run those still queued or running. */
  items: JobItemRow[];
  signal: AbortSignal;
  /** Where the job's outputs go (outputs/<id>/). */
  outDir: string;
  /** Where its uploaded inputs are (uploads/<id>/, removed once the job is over). */
  inputDir: string;
  /** True once the server is stopping: leave the job as it is (it resumes on the next start). */
  readonly stopping: boolean;
  /** Progress of the whole job, 0..1; `step`: steps done of the job's `steps` (always written;
   * progress alone at most every 250 ms). */
  progress(fraction: number, step?: number): void;
  itemRunning(index: number): void;
  itemSucceeded(index: number, result: ItemResult): void;
  /** Records the item's error (canceled when the job was canceled). */
  itemFailed(index: number, err: unknown): void;
}

export type RunJob = (ctx: RunContext) => Promise<void>;

/** What the submit use case (submit-job.ts) gives a kind to turn a request into a job. */
export interface SubmitContext {
  db: Store;
  runtime: ModelRuntime;
  dataDir: string;
  /** DIFFUSABLE_DEFAULT_MODEL, when set. */
  defaultModel: string | null;
  key: { id: string; role: string };
  /** The new job's id; its uploads are in inputDir. */
  jobId: string;
  inputDir: string;
  /** The request came as multipart text fields (numbers as text), not JSON. */
  fromForm: boolean;
}

/** The limits a file check needs. */
export interface CheckLimits {
  maxSeconds: number;
  maxPixels: number;
  defaultModel: string | null;
}

/** An uploaded file, stored in the job's upload folder and checked. */
export interface Upload {
  field: string;
  sourceName: string;
  path: string;
  bytes: number;
}

/** A checked request as the job it becomes. */
export interface PreparedJob {
  /** The bundle's name (the request's, else the default). */
  model: string;
  /** The settings, defaults filled in (stored; `webhook` is not one of them). */
  options: Record<string, unknown>;
  items: NewItem[];
  /** Steps of the whole job (a generation's sampler steps); absent: the items are the steps. */
  steps?: number;
}

/** The fields every request may carry. */
export type CommonFields = { model?: string | undefined; webhook?: string | undefined };

export interface JobKind<F extends CommonFields = CommonFields> {
  /** Stored in jobs.kind: "encode". */
  name: string;
  /** The URL segment (/v1/<resource>) and the webhook event's plural: "encodings". */
  resource: string;
  /** One of them, in messages and webhook event types ("encoding.succeeded"). */
  singular: string;
  /** Of its ids: "enc" gives "enc_...". */
  idPrefix: string;
  /** Jobs of one lane run side by side up to the lane's concurrency (job-runner.ts). */
  lane: "autoencoder" | "generation";
  /** Download roles: GET /v1/<resource>/:id/items/:n/<role>; "metadata" answers the item's
   * metadata as JSON, any other role the output file of that role. */
  outputRoles: readonly string[];
  request: {
    /** The multipart text fields. */
    form: z.ZodType<F>;
    /** The JSON body, when the kind takes one (else multipart only). */
    json?: z.ZodType<F>;
    /** The file fields; `filesRequired`: at least one file. */
    fileFields: readonly string[];
    filesRequired: boolean;
    /** Most files (default: DIFFUSABLE_MAX_FILES). */
    maxFiles?: number;
    /** What the files are, for /openapi.json. */
    describeFiles: string;
  };
  /** Checks one uploaded file before the 202 (throws an AppError saying what is wrong). */
  checkFile(
    runtime: ModelRuntime,
    limits: CheckLimits,
    path: string,
    field: string,
    fields: F,
  ): Promise<unknown>;
  /** Turns a checked request into the job (model, options, items); may store inputs in
   * inputDir. Throws AppErrors (400 naming the field, 404, 409, 422) before anything is queued. */
  prepare(ctx: SubmitContext, fields: F, uploads: Upload[]): Promise<PreparedJob>;
  run: RunJob;
  /** Queued jobs of this kind over all keys are bounded (DIFFUSABLE_MAX_QUEUED_GENERATIONS). */
  limitQueue?: boolean;
  /** Fields the view of a job of this kind adds (generations: the seed). */
  view?(options: Record<string, unknown>): Record<string, unknown>;
}

const active = (i: JobItemRow) => i.status === "queued" || i.status === "running";

/** A run function that runs the job's unfinished items one by one through `runItem`; an item's
 * failure is its own (the others still run). */
export function perItem(
  runItem: (
    ctx: RunContext,
    item: JobItemRow,
    onProgress: (fraction: number) => void,
  ) => Promise<ItemResult>,
): RunJob {
  return async (ctx) => {
    const total = Math.max(1, ctx.items.length);
    let done = ctx.items.filter((i) => !active(i)).length;
    ctx.progress(done / total, done);
    for (const item of ctx.items) {
      if (!active(item)) continue;
      if (ctx.signal.aborted) break;
      ctx.itemRunning(item.index);
      try {
        if (item.inputPath !== null && !existsSync(item.inputPath)) {
          throw new PipelineError("input_missing", `the input of ${item.sourceName} is gone`, 500);
        }
        const result = await runItem(ctx, item, (f) => ctx.progress((done + f) / total));
        ctx.itemSucceeded(item.index, result);
      } catch (err) {
        if (ctx.stopping) return; // left "running": resumed at the next start
        ctx.itemFailed(item.index, err);
      }
      done++;
      ctx.progress(done / total, done);
    }
  };
}
