// The zod schemas of the API: they validate requests and, through z.toJSONSchema, make
// /openapi.json, so the document and the checks cannot drift apart.

import { z } from "zod";
import { ENCODE_MODES } from "../pipeline/autoencoder/encode.ts";
import { FRAME_SIZES } from "../pipeline/autoencoder/tiling.ts";
import { OUTPUT_MODES } from "../pipeline/generate/generate.ts";
import { SAMPLER_METHODS } from "../pipeline/generate/sampler.ts";
import { ALL_OUTPUT_FORMATS, VIDEO_FORMATS } from "../pipeline/media/output-formats.ts";
import { JOB_KINDS, JOB_STATUSES, KEY_ROLES, RUN_KINDS, RUN_STATUSES } from "../store/schema.ts";

export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().meta({ description: "stable machine-readable code, e.g. unknown_model" }),
    message: z.string().meta({ description: "for people; names the field or file at fault" }),
  }),
});

const model = z.string().min(1).max(200).meta({ description: "bundle name (GET /v1/models)" });
const fps = z.coerce
  .number()
  .positive()
  .max(240)
  .optional()
  .meta({ description: "frames per second to sample the video at (default: the bundle's fps)" });

const webhook = z.string().min(1).max(2000).optional().meta({
  description:
    "an http(s) URL called (signed, Standard Webhooks) when the job is over; needs DIFFUSABLE_WEBHOOK_SECRET",
});

const jobModel = model.optional().meta({
  description:
    "bundle name (GET /v1/models); default: DIFFUSABLE_DEFAULT_MODEL, else the se bundle (the same rule as generations)",
});

const size = z.enum(FRAME_SIZES).default("bundle").meta({
  description:
    "bundle: the bundle's square centre crop (its resolution, what it was trained on); native: the video's own width and height, each rounded to the bundle's spatial factor, the whole picture (no crop), tiled in space when larger than the bundle's tile; width x height at most DIFFUSABLE_MAX_PIXELS (422 too_large)",
});

// Strict: a field a route does not know (e.g. mode on a reconstruction) is a 400 naming it,
// never silently dropped.
export const EncodeOptionsSchema = z.strictObject({
  model: jobModel,
  mode: z.enum(ENCODE_MODES).default("clip").meta({
    description:
      "clip: consecutive 1+4k-frame clips like the training data; whole: the whole video causally",
  }),
  fps,
  dtype: z.enum(["float32", "float16"]).default("float32"),
  size,
  webhook,
});

export const VideoFormatSchema = z.enum(VIDEO_FORMATS);

export const DecodeOptionsSchema = z.strictObject({
  model: jobModel,
  format: VideoFormatSchema.default("mp4"),
  webhook,
});

export const ReconstructOptionsSchema = z.strictObject({
  model: jobModel,
  format: VideoFormatSchema.default("mp4"),
  fps,
  size,
  webhook,
});

const ItemSchema = z.object({
  index: z.number().int(),
  source: z.string().meta({ description: "the uploaded file's name" }),
  status: z.enum(JOB_STATUSES),
  error: ErrorSchema.shape.error.nullable(),
  sha256: z.string().nullable().meta({ description: "sha256 of the main output" }),
  metadata: z.record(z.string(), z.unknown()).nullable().meta({
    description:
      "what the item produced; encodings, reconstructions and decodings: size {mode: bundle|native, width, height} (the frame the model saw) and, for encodings and reconstructions, tiles (tiles per frame)",
  }),
  urls: z.record(z.string(), z.string()).meta({ description: "where to fetch the outputs" }),
});

export const JobSchema = z.object({
  id: z.string(),
  kind: z.enum(JOB_KINDS),
  status: z.enum(JOB_STATUSES),
  model: z.string(),
  options: z.record(z.string(), z.unknown()),
  progress: z.number().min(0).max(1),
  attempts: z.number().int().meta({ description: "times started; >1 after a restart resumed it" }),
  error: ErrorSchema.shape.error.nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  items: z.array(ItemSchema),
});

export const LatentsQuerySchema = z.strictObject({
  format: z
    .enum(["npy", "json"])
    .default("npy")
    .meta({ description: "npy: the latents file; json: its metadata" }),
});

export const ListJobsQuerySchema = z.strictObject({
  status: z.enum(JOB_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional().meta({ description: "a job id: list the jobs made before it" }),
});

export const KeySchema = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(KEY_ROLES),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});

export const CreateKeySchema = z.object({
  name: z.string().min(1).max(200),
  role: z.enum(KEY_ROLES).default("user"),
});

export const HealthSchema = z.object({
  status: z.literal("ok"),
  uptimeSeconds: z.number(),
  jobsRunning: z.number().int(),
});

export const ModelsSchema = z.object({ models: z.array(z.record(z.string(), z.unknown())) });

const KIND_NAMES: Record<string, string> = {
  int: "an integer",
  number: "a number",
  string: "a string",
  boolean: "true or false",
  object: "an object",
  array: "a list",
};

/** What zod says it received, as words: "a list", "an object", "Infinity", "null". */
function receivedWords(received: string): string {
  const words: Record<string, string> = { array: "a list", boolean: "true or false" };
  if (words[received]) return words[received];
  if (/^(-?Infinity|NaN|null)$/.test(received)) return received;
  return `${/^[aeiou]/i.test(received) ? "an" : "a"} ${received}`;
}

/** The value zod received, from an invalid_type message ("... received array"). */
const receivedOf = (message: string) => /received (-?\w+)/.exec(message)?.[1];

/** One zod issue as a sentence that starts with the field: "seed must be an integer". */
function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length ? issue.path.join(".") : "the body";
  switch (issue.code) {
    case "invalid_type": {
      const received = receivedOf(issue.message);
      if (received === "undefined") return `${field} is required`;
      const want = KIND_NAMES[issue.expected] ?? issue.expected;
      return `${field} must be ${want}${received ? ` (got ${receivedWords(received)})` : ""}`;
    }
    case "too_small": {
      const { minimum, inclusive, origin } = issue as unknown as {
        minimum: number | bigint;
        inclusive?: boolean;
        origin: string;
      };
      if (origin === "string") return `${field} must be at least ${minimum} characters long`;
      if (origin === "array") return `${field} must have at least ${minimum} items`;
      return `${field} must be ${inclusive === false ? "greater than" : "at least"} ${minimum}`;
    }
    case "too_big": {
      const { maximum, inclusive, origin } = issue as unknown as {
        maximum: number | bigint;
        inclusive?: boolean;
        origin: string;
      };
      if (origin === "string") return `${field} must be at most ${maximum} characters long`;
      if (origin === "array") return `${field} must have at most ${maximum} items`;
      return `${field} must be ${inclusive === false ? "less than" : "at most"} ${maximum}`;
    }
    case "invalid_value":
      return `${field} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return issue.keys.length === 1
        ? `${issue.keys[0]} is not a field of this request (it is not supported here)`
        : `${issue.keys.join(", ")} are not fields of this request (they are not supported here)`;
    case "invalid_union": {
      // Each branch failed on the type (label: a name or an id): say which types would do.
      const firsts = issue.errors.map((branch) => branch[0]);
      if (firsts.every((i) => i?.code === "invalid_type")) {
        const received = receivedOf(firsts[0]?.message ?? "");
        if (received === "undefined") return `${field} is required`;
        const wants = [
          ...new Set(firsts.map((i) => KIND_NAMES[(i as { expected: string }).expected] ?? "?")),
        ];
        return `${field} must be ${wants.join(" or ")}${received ? ` (got ${receivedWords(received)})` : ""}`;
      }
      return `${field} has the wrong type`;
    }
    case "not_multiple_of":
      return `${field} must be a multiple of ${issue.divisor}`;
    default:
      return `${field}: ${issue.message}`;
  }
}

/** Every issue as a sentence naming its field ("seed must be an integer"), for 400 answers. */
export function describeZodError(error: z.ZodError): string {
  // Two checks can fail alike (2^64 is neither a safe integer nor at most 2^53-1): say it once.
  return `${[...new Set(error.issues.map(describeIssue))].join("; ")}.`;
}

const generationDescriptions = {
  model: "bundle name (GET /v1/models); default: DIFFUSABLE_DEFAULT_MODEL, else the se bundle",
  label: "class name or id (GET /v1/models: classes)",
  seed: "noise seed (docs/sampler.md); random when absent, reported back",
  steps: "sampler steps, up to the bundle's sampler.max_steps",
  guidance: "classifier-free guidance scale (1 = none)",
  frames:
    "1 + temporal_factor * k, up to the bundle's frames.max; with a video or an encoding (an extension): the new frames, a positive multiple of temporal_factor up to frames.max (default: one window, temporal_factor * (window_latents - extension_context_latents) of the manifest's conditioning), generated in windows of the denoiser's training length",
  n: "videos (1..8)",
  output:
    "an extension's output: continuation (the new frames only, default) or whole (the input, as the bundle reconstructs it, then the new frames)",
  encoding:
    "continue the latents of this encoding's item (instead of an upload): they are decoded and the extension continues those frames",
  item: "the encoding's item (default 0); a clip-mode item's last clip is continued",
};

export const GenerationRequestSchema = z.strictObject({
  model: model.optional().meta({ description: generationDescriptions.model }),
  label: z
    .union([z.string().min(1).max(200), z.number().int().nonnegative()])
    .meta({ description: generationDescriptions.label }),
  seed: z
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .meta({ description: generationDescriptions.seed }),
  steps: z.number().int().min(1).optional().meta({ description: generationDescriptions.steps }),
  guidance: z
    .number()
    .nonnegative()
    .max(100)
    .optional()
    .meta({ description: generationDescriptions.guidance }),
  method: z.enum(SAMPLER_METHODS).optional(),
  frames: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ description: generationDescriptions.frames }),
  format: z.enum(ALL_OUTPUT_FORMATS).default("mp4"),
  n: z.number().int().min(1).max(8).default(1).meta({ description: generationDescriptions.n }),
  output: z.enum(OUTPUT_MODES).optional().meta({ description: generationDescriptions.output }),
  encoding: z
    .string()
    .regex(/^enc_[\w-]{1,100}$/, "must be an encoding id (enc_...)")
    .optional()
    .meta({ description: generationDescriptions.encoding }),
  item: z.number().int().min(0).optional().meta({ description: generationDescriptions.item }),
  webhook,
});
export type GenerationRequest = z.infer<typeof GenerationRequestSchema>;

/** The multipart form of POST /v1/generations (image-to-video, extension): the JSON request's
 * fields as text (numbers coerced; a label of digits is a class id), beside the `image` or
 * `video` file. */
export const GenerationFormSchema = z.strictObject({
  model: GenerationRequestSchema.shape.model,
  label: z.string().min(1).max(200).meta({ description: generationDescriptions.label }),
  seed: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .meta({ description: generationDescriptions.seed }),
  steps: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .meta({ description: generationDescriptions.steps }),
  guidance: z.coerce
    .number()
    .nonnegative()
    .max(100)
    .optional()
    .meta({ description: generationDescriptions.guidance }),
  method: z.enum(SAMPLER_METHODS).optional(),
  frames: z.coerce
    .number()
    .int()
    .positive()
    .optional()
    .meta({ description: generationDescriptions.frames }),
  format: z.enum(ALL_OUTPUT_FORMATS).default("mp4"),
  n: z.coerce
    .number()
    .int()
    .min(1)
    .max(8)
    .default(1)
    .meta({ description: generationDescriptions.n }),
  output: GenerationRequestSchema.shape.output,
  encoding: GenerationRequestSchema.shape.encoding,
  item: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .meta({ description: generationDescriptions.item }),
  webhook,
});
export type GenerationForm = z.infer<typeof GenerationFormSchema>;

// ---------------------------------------------------------------- response schemas (OpenAPI)

export const JobListSchema = z.object({
  jobs: z.array(JobSchema),
  next: z.string().nullable().meta({ description: "the next page (?before=), null on the last" }),
});

export const GenerationSchema = z.object({
  id: z.string(),
  status: z.enum(JOB_STATUSES),
  model: z.string(),
  options: z.record(z.string(), z.unknown()).meta({ description: "the resolved settings" }),
  seed: z.number().int(),
  step: z.number().int(),
  steps: z.number().int(),
  attempts: z.number().int(),
  error: ErrorSchema.shape.error.nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  timings: z.object({ queuedMs: z.number().nullable(), runMs: z.number().nullable() }),
  outputs: z.array(z.object({ index: z.number().int(), sha256: z.string(), url: z.string() })),
});

export const GenerationListSchema = z.object({
  generations: z.array(GenerationSchema),
  next: z.string().nullable().meta({ description: "the next page (?before=), null on the last" }),
});

export const DeletedSchema = z.object({ id: z.string(), deleted: z.literal(true) });

export const RunSchema = z.object({
  id: z.string(),
  kind: z.enum(RUN_KINDS),
  variant: z.string().nullable(),
  status: z.enum(RUN_STATUSES),
  step: z.number().int(),
  steps: z.number().int().nullable(),
  folder: z.string().meta({ description: "admin keys: the server path; user keys: redacted" }),
  source: z.string(),
  autoencoderRunId: z.string().nullable(),
  pid: z.number().int().nullable().meta({ description: "admin keys only; null for user keys" }),
  error: z.string().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  importedAt: z.string().nullable(),
  updatedAt: z.string(),
  config: z.record(z.string(), z.unknown()),
  live: z.boolean(),
});

export const RunListSchema = z.object({ runs: z.array(RunSchema), next: z.string().nullable() });
export const RunEnvelopeSchema = z.object({ run: RunSchema });
export const RunDetailSchema = z.object({
  run: RunSchema,
  metrics: z.array(z.string()),
  artifacts: z.array(z.record(z.string(), z.unknown())),
  lastStatus: z.record(z.string(), z.unknown()).nullable(),
  autoencoder: RunSchema.nullable(),
  diffusionRuns: z.array(RunSchema),
});
export const RunImportSchema = z.object({
  run: RunSchema,
  accepted: z.number().int(),
  added: z.number().int(),
  rejected: z.array(z.object({ line: z.number().int(), reason: z.string() })),
});
export const MetricsSchema = z.object({
  run: z.string(),
  name: z.string(),
  points: z.array(z.object({ step: z.number(), value: z.number(), time: z.number().nullable() })),
});
export const KeyListSchema = z.object({ keys: z.array(KeySchema) });
export const KeyCreatedSchema = z.object({ key: KeySchema, secret: z.string() });
export const KeyEnvelopeSchema = z.object({ key: KeySchema });
