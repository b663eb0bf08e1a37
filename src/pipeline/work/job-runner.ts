// The durable job runner. Jobs live in SQLite (store/job-rows.ts); the runner takes queued jobs oldest
// first, at most `concurrency` at a time, and runs their items one by one through the pipeline.
// Every output is written atomically (datadir.ts), so a file at an output path is always whole;
// its sha256 is recorded with the item.
// On start-up, jobs left "running" by a crash are resumed (items that succeeded are kept) or, when
// their inputs are gone, finished with the reason. `runItem` is also what the CLI runs, so HTTP and
// CLI produce the same bytes.

import { existsSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { errorInfo } from "../../app-error.ts";
import type { Db } from "../../store/db.ts";
import {
  claimNextJob,
  getJob,
  type JobWithItems,
  jobsWithStatus,
  setItem,
  setJob,
  cancelJob as storeCancelJob,
} from "../../store/job-rows.ts";
import type { JobItemRow, JobKind } from "../../store/schema.ts";
import { decodeLatents } from "../autoencoder/decode.ts";
import { type EncodeMode, encodeFile } from "../autoencoder/encode.ts";
import { reconstructFile } from "../autoencoder/reconstruct.ts";
import type { FrameSize } from "../autoencoder/tiling.ts";
import { encodeNpy, readNpy } from "../media/npy-file.ts";
import type { VideoFormat } from "../media/output-formats.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import {
  outputsDir,
  produceAtomic,
  removeTempFiles,
  sha256,
  sha256File,
  uploadsDir,
  writeAtomic,
} from "./datadir.ts";
import { MAX_ATTEMPTS, RunnerBase } from "./runner.ts";

/** Options of each job kind, as validated by the HTTP layer (and the CLI). */
export interface EncodeJobOptions {
  mode: EncodeMode;
  fps?: number;
  dtype: "float32" | "float16";
  /** Absent in jobs made before the field: bundle. */
  size?: FrameSize;
}
export interface VideoJobOptions {
  format: VideoFormat;
  fps?: number;
  /** Reconstructions only; absent: bundle. */
  size?: FrameSize;
}
export type JobOptions = EncodeJobOptions | VideoJobOptions;

export interface ItemResult {
  /** Output files by role: {latents, metadata} for encode, {video} for decode/reconstruct. */
  outputs: Record<string, string>;
  /** sha256 of the main output (latents or video). */
  sha256: string;
  metadata: Record<string, unknown>;
}

export interface RunItemArgs {
  runtime: ModelRuntime;
  kind: JobKind;
  model: string;
  options: JobOptions;
  inputPath: string;
  sourceName: string;
  /** Directory for the outputs; `baseName` + extension names them. */
  outDir: string;
  baseName: string;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

/** Pixels along a latent axis (3: height, 4: width) of an (N, C, t, h, w) array. */
function latentSide(latents: { shape: number[] }, axis: number, spatialFactor: number): number {
  return (latents.shape.at(axis - 5) ?? 0) * spatialFactor;
}

/** Runs one item through the pipeline and writes its outputs atomically into outDir. */
export async function runItem(args: RunItemArgs): Promise<ItemResult> {
  const { runtime, model, inputPath, outDir, baseName, signal } = args;
  await mkdir(outDir, { recursive: true });
  if (args.kind === "encode") {
    const options = args.options as EncodeJobOptions;
    const result = await encodeFile(runtime, model, inputPath, {
      mode: options.mode,
      dtype: options.dtype,
      ...(options.fps !== undefined ? { fps: options.fps } : {}),
      ...(options.size !== undefined ? { size: options.size } : {}),
      ...(signal ? { signal } : {}),
      onProgress: ({ framesDone, framesTotal }) => {
        if (framesTotal) args.onProgress?.(Math.min(1, framesDone / framesTotal));
      },
    });
    const latents = encodeNpy(result.latents);
    const metadata = { ...result.meta, source: args.sourceName };
    const latentsPath = join(outDir, `${baseName}.npy`);
    const metadataPath = join(outDir, `${baseName}.json`);
    await writeAtomic(latentsPath, outDir, baseName, "npy", latents);
    await writeAtomic(
      metadataPath,
      outDir,
      baseName,
      "json",
      new TextEncoder().encode(`${JSON.stringify(metadata, null, 2)}\n`),
    );
    return {
      outputs: { latents: latentsPath, metadata: metadataPath },
      sha256: sha256(latents),
      metadata,
    };
  }
  const options = args.options as VideoJobOptions;
  const videoPath = join(outDir, `${baseName}.${options.format}`);
  if (args.kind === "decode") {
    const sf = runtime.loaded(model).manifest.spatial_factor;
    const latents = await readNpy(inputPath).catch((err: Error) => {
      throw new PipelineError("bad_latents", `${args.sourceName}: ${err.message}`, 400);
    });
    const result = await produceAtomic(videoPath, outDir, baseName, options.format, (tmp) =>
      decodeLatents(runtime, model, latents, {
        format: options.format,
        outPath: tmp,
        ...(signal ? { signal } : {}),
      }),
    );
    return {
      outputs: { video: videoPath },
      sha256: await sha256File(videoPath),
      metadata: {
        source: args.sourceName,
        frames: result.frames,
        format: options.format,
        // Decodings take latents of the bundle's size only (input-checks.ts checkLatentsInput).
        size: {
          mode: "bundle",
          width: latentSide(latents, 4, sf),
          height: latentSide(latents, 3, sf),
        },
      },
    };
  }
  const result = await produceAtomic(videoPath, outDir, baseName, options.format, (tmp) =>
    reconstructFile(runtime, model, inputPath, {
      format: options.format,
      outPath: tmp,
      ...(options.fps !== undefined ? { fps: options.fps } : {}),
      ...(options.size !== undefined ? { size: options.size } : {}),
      ...(signal ? { signal } : {}),
    }),
  );
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    outputs: { video: videoPath },
    sha256: await sha256File(videoPath),
    metadata: {
      source: args.sourceName,
      format: options.format,
      frames: result.frames,
      size: result.size,
      tiles: result.tiles,
      psnr: result.psnr,
      ssim: result.ssim,
      psnrMean: mean(result.psnr),
      ssimMean: mean(result.ssim),
    },
  };
}

export interface JobRunnerOptions {
  db: Db;
  runtime: ModelRuntime;
  dataDir: string;
  /** Jobs run at the same time. */
  concurrency: number;
  log?: (line: string) => void;
}

export interface RecoveryReport {
  resumed: string[];
  failed: string[];
  removedTemp: number;
  removedUploads: number;
}

export class JobRunner extends RunnerBase<JobWithItems> {
  readonly #db: Db;
  readonly #runtime: ModelRuntime;
  readonly #dataDir: string;

  constructor(options: JobRunnerOptions) {
    super({
      concurrency: options.concurrency,
      name: "jobs",
      ...(options.log ? { log: options.log } : {}),
    });
    this.#db = options.db;
    this.#runtime = options.runtime;
    this.#dataDir = options.dataDir;
  }

  get dataDir(): string {
    return this.#dataDir;
  }

  /** Recovers what a crash left behind, then starts taking queued jobs. */
  async start(): Promise<RecoveryReport> {
    const report = await this.recover();
    this.begin();
    return report;
  }

  /** Re-queues or fails jobs left running, and deletes temporary files. Call before start. */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { resumed: [], failed: [], removedTemp: 0, removedUploads: 0 };
    report.removedTemp =
      (await removeTempFiles(outputsDir(this.#dataDir))) +
      (await removeTempFiles(uploadsDir(this.#dataDir)));
    // Upload folders of jobs that never made it into the database (a crash between the upload
    // and the insert) or that have finished.
    for (const name of await readdir(uploadsDir(this.#dataDir)).catch(() => [] as string[])) {
      const job = getJob(this.#db, name);
      if (!job || !["queued", "running"].includes(job.job.status)) {
        await rm(uploadsDir(this.#dataDir, name), { recursive: true, force: true });
        report.removedUploads++;
      }
    }
    for (const { job, items } of jobsWithStatus(this.#db, "running")) {
      if (job.attempts >= MAX_ATTEMPTS) {
        for (const item of items) {
          if (item.status === "queued" || item.status === "running") {
            setItem(this.#db, job.id, item.index, {
              status: "failed",
              errorCode: "interrupted",
              errorMessage: `the server stopped during this job ${job.attempts} times`,
              finishedAt: new Date(),
            });
          }
        }
        this.#finish(job.id, {
          code: "interrupted",
          message: `the server stopped during this job ${job.attempts} times; not resuming it again`,
        });
        report.failed.push(job.id);
        continue;
      }
      let pending = 0;
      for (const item of items) {
        const outputsGone =
          item.status === "succeeded" &&
          Object.values(item.outputs ?? {}).some((p) => !existsSync(p));
        if (item.status !== "running" && item.status !== "queued" && !outputsGone) continue;
        if (!existsSync(item.inputPath)) {
          setItem(this.#db, job.id, item.index, {
            status: "failed",
            errorCode: "input_missing",
            errorMessage: `the input of ${item.sourceName} is gone from the data dir; cannot resume`,
            outputs: null,
            outputSha256: null,
            finishedAt: new Date(),
          });
        } else {
          setItem(this.#db, job.id, item.index, {
            status: "queued",
            outputs: null,
            outputSha256: null,
          });
          pending++;
        }
      }
      if (pending > 0) {
        setJob(this.#db, job.id, { status: "queued" });
        report.resumed.push(job.id);
      } else {
        const reason = this.#finish(job.id, {
          code: "interrupted",
          message: "the server stopped during this job and its inputs are gone",
        });
        if (reason === "failed") report.failed.push(job.id);
        else report.resumed.push(job.id);
      }
    }
    for (const line of [
      report.resumed.length ? `jobs: resuming ${report.resumed.join(", ")}` : "",
      report.failed.length ? `jobs: failed after a crash: ${report.failed.join(", ")}` : "",
      report.removedTemp ? `jobs: removed ${report.removedTemp} temporary file(s)` : "",
    ]) {
      if (line) this.log(line);
    }
    return report;
  }

  protected claim(): JobWithItems | null {
    return claimNextJob(this.#db);
  }

  protected idOf(work: JobWithItems): string {
    return work.job.id;
  }

  /** Cancels a queued or running job; false if it had already finished or does not exist. */
  cancel(jobId: string): boolean {
    const canceled = storeCancelJob(this.#db, jobId);
    if (canceled) {
      this.abortRunning(jobId, new PipelineError("canceled", "canceled", 400));
      void rm(uploadsDir(this.#dataDir, jobId), { recursive: true, force: true });
    }
    return canceled;
  }

  protected execute(work: JobWithItems, signal: AbortSignal): Promise<void> {
    return this.#run(work, signal);
  }

  async #run({ job, items }: JobWithItems, signal: AbortSignal): Promise<void> {
    const total = items.length;
    let done = items.filter((i) => i.status !== "queued" && i.status !== "running").length;
    let lastWrite = 0;
    const progress = (fraction: number, force = false) => {
      const now = Date.now();
      if (!force && now - lastWrite < 250) return;
      lastWrite = now;
      setJob(this.#db, job.id, { progress: Math.min(1, (done + fraction) / Math.max(1, total)) });
    };
    progress(0, true);
    for (const item of items) {
      if (item.status !== "queued" && item.status !== "running") continue;
      if (signal.aborted) break;
      await this.#runOne(
        job.id,
        job.kind,
        job.model,
        job.options as unknown as JobOptions,
        item,
        signal,
        progress,
      );
      if (this.stopping) return;
      done++;
      progress(0, true);
    }
    if (this.stopping) return;
    const current = getJob(this.#db, job.id);
    if (current?.job.status !== "running") return; // canceled meanwhile
    this.#finish(job.id);
  }

  async #runOne(
    jobId: string,
    kind: JobKind,
    model: string,
    options: JobOptions,
    item: JobItemRow,
    signal: AbortSignal,
    progress: (fraction: number) => void,
  ): Promise<void> {
    setItem(this.#db, jobId, item.index, { status: "running", startedAt: new Date() });
    try {
      if (!existsSync(item.inputPath)) {
        throw new PipelineError("input_missing", `the input of ${item.sourceName} is gone`, 500);
      }
      const result = await runItem({
        runtime: this.#runtime,
        kind,
        model,
        options,
        inputPath: item.inputPath,
        sourceName: item.sourceName,
        outDir: outputsDir(this.#dataDir, jobId),
        baseName: String(item.index),
        signal,
        onProgress: progress,
      });
      setItem(this.#db, jobId, item.index, {
        status: "succeeded",
        outputs: result.outputs,
        outputSha256: result.sha256,
        metadata: result.metadata,
        errorCode: null,
        errorMessage: null,
        finishedAt: new Date(),
      });
    } catch (err) {
      if (this.stopping) return; // left "running": resumed at the next start
      const canceled = signal.aborted;
      const { code, message } = canceled
        ? { code: "canceled", message: "canceled by request" }
        : errorInfo(err);
      setItem(this.#db, jobId, item.index, {
        status: canceled ? "canceled" : "failed",
        errorCode: code,
        // The tools name the stored input by its path; the user knows it by its name.
        errorMessage: message.replaceAll(item.inputPath, item.sourceName),
        finishedAt: new Date(),
      });
    }
  }

  /** Sets the job's final status from its items: failed when none succeeded. */
  #finish(jobId: string, fallback?: { code: string; message: string }): "succeeded" | "failed" {
    const current = getJob(this.#db, jobId);
    const items = current?.items ?? [];
    const ok = items.filter((i) => i.status === "succeeded").length;
    const failedItems = items.filter((i) => i.status === "failed");
    const status = ok > 0 ? "succeeded" : "failed";
    const first = failedItems[0];
    const error =
      status === "succeeded"
        ? { code: null, message: null }
        : first
          ? {
              code: first.errorCode ?? fallback?.code ?? "failed",
              message:
                items.length === 1
                  ? (first.errorMessage ?? "failed")
                  : `all ${items.length} items failed; item 0: ${first.errorMessage ?? first.errorCode}`,
            }
          : { code: fallback?.code ?? "failed", message: fallback?.message ?? "no items" };
    setJob(this.#db, jobId, {
      status,
      progress: 1,
      errorCode: error.code,
      errorMessage: error.message,
      finishedAt: new Date(),
    });
    void rm(uploadsDir(this.#dataDir, jobId), { recursive: true, force: true });
    return status;
  }
}
