// The durable generation runner: generations live in SQLite (store/generation-rows.ts); the runner
// takes queued ones oldest first, at most `concurrency` at a time (the lifecycle is runner.ts's,
// shared with job-runner.ts), and runs each through generate.ts; running generations of one
// bundle and latent shape share denoiser calls (batcher.ts). Progress (step of steps) is written
// after every sampler step; cancel aborts the sampler, which checks before every denoiser step.
// Outputs are written under temporary names, fsynced and renamed into place (datadir.ts), and
// their sha256 recorded; a generation left running by a crash is queued again on start (the same
// seed gives the same bytes, so a rerun is the same result).

import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { errorInfo } from "../../app-error.ts";
import type { Db } from "../../store/db.ts";
import {
  cancelGeneration,
  claimNextGeneration,
  finishGeneration,
  generationsWithStatus,
  getGeneration,
  setGeneration,
} from "../../store/generation-rows.ts";
import type { GenerationRow } from "../../store/schema.ts";
import { DenoiserBatcher } from "../generate/batcher.ts";
import {
  type GenerateFormat,
  type GenerateSettings,
  generateFiles,
  type OutputMode,
} from "../generate/generate.ts";
import type { ContextMode } from "../generate/sampler.ts";
import { loadSource, type SourceKind } from "../generate/source.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { commitFile, generationsDir, removeTempFiles, sha256File, tempPath } from "./datadir.ts";
import { MAX_ATTEMPTS, RunnerBase } from "./runner.ts";

/** What a generation row's `options` holds: the resolved settings (defaults filled in) that
 * are not derived from the bundle, and the output format. */
export type GenerationOptions = Omit<GenerateSettings, "nullClass" | "shape" | "condition"> & {
  format: GenerateFormat;
  /** What the generation starts from besides its label (image-to-video, extension). */
  input?: GenerationInput;
};

/** An image, a clip or an encoding's latents that a generation starts from: stored in the
 * generation's folder at submission (so the encoding may be deleted meanwhile, and a rerun gives
 * the same bytes) and encoded when it runs. */
export interface GenerationInput {
  /** "image": latent frame 0 is the image's; "video" and "latents": an extension. */
  kind: SourceKind;
  /** The upload's file name, or the encoding item ("enc_.../items/0"). */
  source: string;
  /** Of the stored input file. */
  sha256: string;
  /** The stored input's file name in the generation's folder. */
  file: string;
  /** An extension's output: the new frames only, or the input followed by them. */
  output: OutputMode;
  /** Latent frames given (1 for an image; an extension's first window's, generate/extend.ts). */
  contextLatents: number;
  contextMode: ContextMode;
}

export interface GenerationRunnerOptions {
  db: Db;
  runtime: ModelRuntime;
  dataDir: string;
  /** Generations run at once; they share denoiser calls through the batcher. */
  concurrency: number;
  /** Videos per shared denoiser call (batcher.ts; default 8). Ignored when `batcher` is given. */
  maxBatch?: number;
  /** A batcher to share with other callers (e.g. admin sample videos); default a new one. */
  batcher?: DenoiserBatcher;
  log?: (line: string) => void;
}

export class GenerationRunner extends RunnerBase<GenerationRow> {
  /** Where the running generations' denoiser calls are shared. */
  readonly batcher: DenoiserBatcher;
  readonly #db: Db;
  readonly #runtime: ModelRuntime;
  readonly #dataDir: string;
  #listeners = new Set<(row: GenerationRow) => void>();

  constructor(opts: GenerationRunnerOptions) {
    super({
      concurrency: opts.concurrency,
      name: "generations",
      ...(opts.log ? { log: opts.log } : {}),
    });
    this.#db = opts.db;
    this.#runtime = opts.runtime;
    this.#dataDir = opts.dataDir;
    this.batcher =
      opts.batcher ??
      new DenoiserBatcher(opts.runtime, {
        ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
      });
  }

  /** Queues again generations left running by a crash, removes temp files, starts taking work. */
  async start(): Promise<{ resumed: string[]; failed: string[] }> {
    const report = { resumed: [] as string[], failed: [] as string[] };
    await removeTempFiles(generationsDir(this.#dataDir));
    for (const g of generationsWithStatus(this.#db, "running")) {
      if (g.attempts >= MAX_ATTEMPTS) {
        setGeneration(this.#db, g.id, {
          status: "failed",
          errorCode: "interrupted",
          errorMessage: `the server stopped during this generation ${g.attempts} times`,
          finishedAt: new Date(),
        });
        report.failed.push(g.id);
      } else {
        setGeneration(this.#db, g.id, { status: "queued", step: 0 });
        report.resumed.push(g.id);
      }
    }
    if (report.resumed.length) this.log(`generations: resuming ${report.resumed.join(", ")}`);
    this.begin();
    return report;
  }

  /** Called with the row after every change the runner makes (progress, final status). */
  subscribe(listener: (row: GenerationRow) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(id: string): void {
    const row = getGeneration(this.#db, id);
    if (row) for (const l of this.#listeners) l(row);
  }

  protected claim(): GenerationRow | null {
    return claimNextGeneration(this.#db);
  }

  protected idOf(g: GenerationRow): string {
    return g.id;
  }

  protected execute(g: GenerationRow, signal: AbortSignal): Promise<void> {
    return this.#run(g, signal);
  }

  /** Cancels a queued or running generation; false when it has finished or does not exist. */
  cancel(id: string): boolean {
    const canceled = cancelGeneration(this.#db, id);
    if (canceled) {
      this.abortRunning(id, new PipelineError("canceled", "canceled", 400));
      this.#changed(id);
    }
    return canceled;
  }

  async #run(g: GenerationRow, signal: AbortSignal): Promise<void> {
    const o = g.options as unknown as GenerationOptions;
    const dir = generationsDir(this.#dataDir, g.id);
    await mkdir(dir, { recursive: true });
    const finals = Array.from({ length: o.n }, (_, k) => join(dir, `${k}.${o.format}`));
    const temps = finals.map((_, k) => tempPath(dir, String(k), o.format));
    this.#changed(g.id);
    try {
      const bundle = this.#runtime.loaded(g.model);
      const input = o.input;
      const conditioned = input
        ? {
            condition:
              input.kind === "image"
                ? ({ kind: "image" } as const)
                : ({ kind: "extend", output: input.output } as const),
            source: await loadSource(
              this.#runtime,
              bundle,
              input.kind,
              join(dir, input.file),
              signal,
            ),
          }
        : {};
      await generateFiles(this.#runtime, bundle, {
        ...conditioned,
        label: o.label,
        seed: o.seed,
        steps: o.steps,
        guidance: o.guidance,
        method: o.method,
        frames: o.frames,
        n: o.n,
        format: o.format,
        outPaths: temps,
        signal,
        batcher: this.batcher,
        onStep: (step) => {
          setGeneration(this.#db, g.id, { step });
          this.#changed(g.id);
        },
      });
      const hashes: string[] = [];
      for (let k = 0; k < o.n; k++) {
        hashes.push(await sha256File(temps[k] as string));
        await commitFile(temps[k] as string, finals[k] as string);
      }
      finishGeneration(this.#db, g.id, {
        status: "succeeded",
        outputs: finals,
        outputSha256: hashes,
        finishedAt: new Date(),
      });
    } catch (err) {
      await Promise.all(temps.map((t) => rm(t, { force: true })));
      if (this.stopping) return; // left running: resumed at the next start
      if (!signal.aborted) {
        const { code, message } = errorInfo(err);
        finishGeneration(this.#db, g.id, {
          status: "failed",
          errorCode: code,
          errorMessage: message,
          finishedAt: new Date(),
        });
      }
    }
    this.#changed(g.id);
  }
}
