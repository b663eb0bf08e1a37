// The registry of job kinds: one list, read by every layer. The runner (job-runner.ts) runs a
// job with its kind's run function; the submit use case (submit-job.ts) turns a request into a
// job with its kind's prepare; the HTTP layer mounts one resource per entry
// (server/routes/job-resource.ts: every verb, the same list envelope, the same error codes),
// describes it in /openapi.json from its request schemas and output roles, and names its
// webhooks' events after it. Adding a resource is one entry here and its run function
// (kind-contract.ts says what an entry holds).

import { AppError } from "../../app-error.ts";
import { runAutoencoderJob } from "./autoencoder-jobs.ts";
import { resolveModel } from "./default-model.ts";
import { checkClipInput, checkImageInput } from "./generation-input.ts";
import { prepareGeneration, runGeneration } from "./generation-job.ts";
import { checkLatentsInput, checkVideoInput } from "./input-checks.ts";
import {
  DecodeOptionsSchema,
  EncodeOptionsSchema,
  GenerationFormSchema,
  type GenerationRequest,
  GenerationRequestSchema,
  ReconstructOptionsSchema,
} from "./job-requests.ts";
import type { CommonFields, JobKind, PreparedJob, SubmitContext, Upload } from "./kind-contract.ts";

/** A job whose items are its uploaded files, one each, with the request's fields as options. */
async function filesAsItems(
  ctx: SubmitContext,
  fields: CommonFields,
  uploads: Upload[],
): Promise<PreparedJob> {
  const { model, webhook: _, ...options } = fields;
  return {
    model: resolveModel(ctx.runtime, model, ctx.defaultModel).name,
    options,
    items: uploads.map((u) => ({
      sourceName: u.sourceName,
      inputPath: u.path,
      inputBytes: u.bytes,
    })),
  };
}

const FILES = ["files", "file"] as const;

/** Videos: probed, their frames at the requested fps against the mode and the bundle, their
 * duration and (size native) their frame against the limits. */
const checkVideo: JobKind<{
  model?: string | undefined;
  mode?: "clip" | "whole";
  fps?: number | undefined;
  size?: "bundle" | "native";
}>["checkFile"] = async (runtime, limits, path, _field, fields) =>
  checkVideoInput(resolveModel(runtime, fields.model, limits.defaultModel), path, {
    mode: fields.mode ?? "clip",
    fps: fields.fps,
    maxSeconds: limits.maxSeconds,
    size: fields.size,
    maxPixels: limits.maxPixels,
  });

const encode: JobKind<ReturnType<typeof EncodeOptionsSchema.parse>> = {
  name: "encode",
  resource: "encodings",
  singular: "encoding",
  idPrefix: "enc",
  lane: "autoencoder",
  outputRoles: ["latents", "metadata"],
  request: {
    form: EncodeOptionsSchema,
    fileFields: FILES,
    filesRequired: true,
    describeFiles:
      "videos (1..DIFFUSABLE_MAX_FILES); with size=native each frame, rounded to the spatial factor, at most DIFFUSABLE_MAX_PIXELS pixels (else 422 too_large)",
  },
  checkFile: checkVideo,
  prepare: filesAsItems,
  run: runAutoencoderJob("encode"),
};

const decode: JobKind<ReturnType<typeof DecodeOptionsSchema.parse>> = {
  name: "decode",
  resource: "decodings",
  singular: "decoding",
  idPrefix: "dec",
  lane: "autoencoder",
  outputRoles: ["video"],
  request: {
    form: DecodeOptionsSchema,
    fileFields: FILES,
    filesRequired: true,
    describeFiles: "latents as .npy, shape (1,C,t,h,w)",
  },
  checkFile: async (runtime, limits, path, _field, fields) =>
    checkLatentsInput(resolveModel(runtime, fields.model, limits.defaultModel), path, limits),
  prepare: filesAsItems,
  run: runAutoencoderJob("decode"),
};

const reconstruct: JobKind<ReturnType<typeof ReconstructOptionsSchema.parse>> = {
  name: "reconstruct",
  resource: "reconstructions",
  singular: "reconstruction",
  idPrefix: "rec",
  lane: "autoencoder",
  outputRoles: ["video"],
  request: {
    form: ReconstructOptionsSchema,
    fileFields: FILES,
    filesRequired: true,
    describeFiles:
      "videos; with size=native each frame, rounded to the spatial factor, at most DIFFUSABLE_MAX_PIXELS pixels (else 422 too_large)",
  },
  checkFile: checkVideo,
  prepare: filesAsItems,
  run: runAutoencoderJob("reconstruct"),
};

const generate: JobKind<GenerationRequest> = {
  name: "generate",
  resource: "generations",
  singular: "generation",
  idPrefix: "gen",
  lane: "generation",
  // A video (mp4, webm, gif), or with format npy its latents.
  outputRoles: ["video", "latents"],
  request: {
    form: GenerationFormSchema,
    json: GenerationRequestSchema,
    fileFields: ["image", "video"],
    filesRequired: false,
    maxFiles: 2,
    describeFiles:
      "image (image-to-video: a PNG, JPEG or WebP, or a one-frame video, resized and centre-cropped to the bundle's resolution) or video (extension: a clip to continue, checked as a whole-mode encoding is)",
  },
  checkFile: async (runtime, limits, path, field, fields) => {
    if (field === "image") return checkImageInput(path);
    const bundle = resolveModel(runtime, fields.model, limits.defaultModel);
    return checkClipInput(bundle, path, limits.maxSeconds);
  },
  prepare: prepareGeneration,
  run: runGeneration,
  limitQueue: true,
  view: (options) => ({ seed: options.seed }),
};

/** Every kind of job; one resource each. */
export const JOB_KINDS: readonly JobKind[] = [
  encode,
  decode,
  reconstruct,
  generate,
] as unknown as readonly JobKind[];

/** The kind of this name (as stored in jobs.kind). */
export function kindNamed(name: string): JobKind {
  const kind = JOB_KINDS.find((k) => k.name === name);
  if (!kind) throw new AppError("unknown_kind", `no job kind "${name}"`, 500);
  return kind;
}
