// The generation kind's work (its entry is in job-kinds.ts): planning a request against the
// bundle (settings resolved, every default filled in, a seed drawn when there is none), preparing
// a request as a job (the image, clip or encoding's latents it starts from stored in the job's
// upload folder; one item per video), and the run function: one sampler run for the job's n
// videos through generate.ts, sharing denoiser calls with the other running generations
// (batcher.ts), progress after every sampler step. A generation is all or nothing: its videos
// are written under temporary names and committed together; a rerun after a crash starts from
// step 0 and gives the same bytes (the same seed).

import { randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { AppError } from "../../app-error.ts";
import {
  type GenerateFormat,
  type GenerateSettings,
  generateFiles,
  type OutputMode,
  resolveSettings,
} from "../generate/generate.ts";
import type { ContextMode, SamplerMethod } from "../generate/sampler.ts";
import { loadSource, type SourceKind } from "../generate/source.ts";
import { isPipelineError, PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { commitFile, generationsDir, sha256File, tempPath } from "./datadir.ts";
import { resolveModel } from "./default-model.ts";
import { storeEncodingLatents, storeUpload } from "./generation-input.ts";
import type { GenerationRequest } from "./job-requests.ts";
import type { PreparedJob, RunContext, SubmitContext, Upload } from "./kind-contract.ts";

/** What a generation job's `options` holds: the resolved settings (defaults filled in) that are
 * not derived from the bundle, and the output format. */
export type GenerationOptions = Omit<GenerateSettings, "nullClass" | "shape" | "condition"> & {
  format: GenerateFormat;
  /** What the generation starts from besides its label (image-to-video, extension). */
  input?: GenerationInput;
};

/** An image, a clip or an encoding's latents that a generation starts from: stored in the job's
 * upload folder at submission (so the encoding may be deleted meanwhile, and a rerun gives the
 * same bytes) and encoded when it runs. */
export interface GenerationInput {
  /** "image": latent frame 0 is the image's; "video" and "latents": an extension. */
  kind: SourceKind;
  /** The upload's file name, or the encoding item ("enc_.../items/0"). */
  source: string;
  /** Of the stored input file. */
  sha256: string;
  /** The stored input's file name in the job's upload folder. */
  file: string;
  /** An extension's output: the new frames only, or the input followed by them. */
  output: OutputMode;
  /** Latent frames given (1 for an image; an extension's first window's, generate/extend.ts). */
  contextLatents: number;
  contextMode: ContextMode;
}

/** What planGeneration takes: a checked request. */
export interface GenerationPlanRequest {
  /** A bundle name; omitted: the default model. */
  model?: string | undefined;
  label: string | number;
  seed?: number | undefined;
  steps?: number | undefined;
  guidance?: number | undefined;
  method?: SamplerMethod | undefined;
  frames?: number | undefined;
  n?: number | undefined;
  format: GenerateFormat;
  /** An image, clip or encoding's latents to start from, already stored and checked. */
  input?: Omit<GenerationInput, "contextLatents" | "contextMode"> | undefined;
}

/** A checked request: the bundle it runs on and its settings, every default filled in. */
export interface PlannedGeneration {
  model: string;
  options: GenerationOptions;
}

/** Picks the model and resolves the settings; a seed is drawn when the request has none. */
export function planGeneration(
  runtime: ModelRuntime,
  req: GenerationPlanRequest,
  defaultModel: string | null = null,
): PlannedGeneration {
  const bundle = resolveModel(runtime, req.model, defaultModel);
  let settings: ReturnType<typeof resolveSettings>;
  try {
    settings = resolveSettings(bundle, {
      label: req.label,
      seed: req.seed ?? randomInt(0, 2 ** 47),
      ...(req.steps !== undefined ? { steps: req.steps } : {}),
      ...(req.guidance !== undefined ? { guidance: req.guidance } : {}),
      ...(req.method !== undefined ? { method: req.method } : {}),
      ...(req.frames !== undefined ? { frames: req.frames } : {}),
      ...(req.n !== undefined ? { n: req.n } : {}),
      ...(req.input
        ? {
            condition:
              req.input.kind === "image"
                ? { kind: "image" as const }
                : { kind: "extend" as const, output: req.input.output },
          }
        : {}),
    });
  } catch (err) {
    if (isPipelineError(err, "bad_request")) throw new AppError("invalid_field", err.message, 400);
    throw err; // cannot_generate, cannot_extend (422)
  }
  const c = settings.condition;
  return {
    model: bundle.name,
    options: {
      label: settings.label,
      labelName: settings.labelName,
      seed: settings.seed,
      steps: settings.steps,
      guidance: settings.guidance,
      method: settings.method,
      frames: settings.frames,
      n: settings.n,
      format: req.format,
      ...(req.input && c
        ? { input: { ...req.input, contextLatents: c.contextLatents, contextMode: c.contextMode } }
        : {}),
    },
  };
}

/** A planned generation as the job it becomes: one item per video. */
export function generationJob(plan: PlannedGeneration): PreparedJob {
  return {
    model: plan.model,
    options: plan.options as unknown as Record<string, unknown>,
    items: Array.from({ length: plan.options.n }, () => ({})),
    steps: plan.options.steps,
  };
}

/** POST /v1/generations (JSON, or multipart with an `image` or `video` file): the input stored
 * in the job's upload folder, the settings planned. */
export async function prepareGeneration(
  ctx: SubmitContext,
  fields: GenerationRequest,
  uploads: Upload[],
): Promise<PreparedJob> {
  const { webhook: _, encoding, item, output, ...rest } = fields;
  if (uploads.length > 1) {
    throw new AppError(
      "invalid_field",
      `${uploads.map((u) => u.field).join(" and ")}: give one file, an image or a video`,
      400,
    );
  }
  const upload = uploads[0];
  if (upload && encoding !== undefined) {
    throw new AppError(
      "invalid_field",
      `encoding: give either an encoding or an uploaded ${upload.field}, not both`,
      400,
    );
  }
  if (item !== undefined && encoding === undefined) {
    throw new AppError("invalid_field", "item: only with encoding", 400);
  }
  const extension = encoding !== undefined || upload?.field === "video";
  if (output !== undefined && !extension) {
    throw new AppError(
      "invalid_field",
      "output: only an extension (a video or an encoding) has an output mode",
      400,
    );
  }
  const mode = output ?? (extension ? "continuation" : "whole");
  // A form's label of digits is a class id, as a JSON number is.
  const label = rest.label;
  const req: GenerationPlanRequest = {
    ...rest,
    label: ctx.fromForm && typeof label === "string" && /^\d+$/.test(label) ? Number(label) : label,
  };
  if (upload) {
    const stored = await storeUpload(ctx.inputDir, upload.path);
    const kind = upload.field === "image" ? "image" : "video";
    req.input = { kind, source: upload.sourceName, output: mode, ...stored };
  } else if (encoding !== undefined) {
    const bundle = resolveModel(ctx.runtime, rest.model, ctx.defaultModel);
    const stored = await storeEncodingLatents(
      ctx.db,
      ctx.inputDir,
      bundle,
      ctx.key,
      encoding,
      item ?? 0,
    );
    req.input = { kind: "latents", output: mode, ...stored };
  }
  return generationJob(planGeneration(ctx.runtime, req, ctx.defaultModel));
}

/** The stored input: in the job's upload folder (generations made before the one job model kept
 * it in generations/<id>/). */
function inputPath(ctx: RunContext, file: string): string {
  const path = join(ctx.inputDir, file);
  const legacy = join(generationsDir(ctx.dataDir, ctx.job.id), file);
  return !existsSync(path) && existsSync(legacy) ? legacy : path;
}

/** The generation kind's run function: every video of the job in one sampler run. */
export async function runGeneration(ctx: RunContext): Promise<void> {
  const { job, runtime, signal } = ctx;
  const o = job.options as unknown as GenerationOptions;
  const role = o.format === "npy" ? "latents" : "video";
  const finals = ctx.items.map((i) => join(ctx.outDir, `${i.index}.${o.format}`));
  const temps = ctx.items.map((i) => tempPath(ctx.outDir, String(i.index), o.format));
  for (const item of ctx.items) ctx.itemRunning(item.index);
  ctx.progress(0, 0);
  try {
    const bundle = runtime.loaded(job.model);
    const input = o.input;
    let conditioned = {};
    if (input) {
      const path = inputPath(ctx, input.file);
      if (!existsSync(path)) {
        throw new PipelineError("input_missing", `the input of ${input.source} is gone`, 500);
      }
      conditioned = {
        condition:
          input.kind === "image"
            ? ({ kind: "image" } as const)
            : ({ kind: "extend", output: input.output } as const),
        source: await loadSource(runtime, bundle, input.kind, path, signal),
      };
    }
    await generateFiles(runtime, bundle, {
      ...conditioned,
      label: o.label,
      seed: o.seed,
      steps: o.steps,
      guidance: o.guidance,
      method: o.method,
      frames: o.frames,
      n: ctx.items.length,
      format: o.format,
      outPaths: temps,
      signal,
      batcher: ctx.batcher,
      onStep: (step) => ctx.progress(step / Math.max(1, o.steps), step),
    });
    const hashes: string[] = [];
    for (const [k, tmp] of temps.entries()) {
      hashes.push(await sha256File(tmp));
      await commitFile(tmp, finals[k] as string);
    }
    for (const [k, item] of ctx.items.entries()) {
      ctx.itemSucceeded(item.index, {
        outputs: { [role]: finals[k] as string },
        sha256: hashes[k] as string,
        metadata: null,
      });
    }
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    if (ctx.stopping) return; // left running: resumed at the next start
    for (const item of ctx.items) ctx.itemFailed(item.index, err);
  }
}
