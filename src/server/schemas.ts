// The zod schemas of the API: they validate requests, and the route definitions that use them
// make /openapi.json (server/openapi.ts), so the document and the checks cannot drift apart. A
// schema's meta id names its component in the document.

import { z } from "zod";
import { JOB_KINDS } from "../pipeline/work/job-kinds.ts";
import { JOB_STATUSES, KEY_ROLES, RUN_KINDS, RUN_STATUSES } from "../store/schema.ts";

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: "stable machine-readable code, e.g. unknown_model" }),
      message: z.string().meta({ description: "for people; names the field or file at fault" }),
    }),
  })
  .meta({ id: "Error" });

const ItemSchema = z.object({
  index: z.number().int(),
  source: z
    .string()
    .nullable()
    .meta({ description: "the uploaded file's name; null for an item without a file of its own" }),
  status: z.enum(JOB_STATUSES),
  error: ErrorSchema.shape.error.nullable(),
  sha256: z.string().nullable().meta({ description: "sha256 of the main output" }),
  metadata: z.record(z.string(), z.unknown()).nullable().meta({
    description:
      "what the item produced; encodings, reconstructions and decodings: size {mode: bundle|native, width, height} (the frame the model saw) and, for encodings and reconstructions, tiles (tiles per frame)",
  }),
  urls: z
    .record(z.string(), z.string())
    .meta({ description: "where to fetch the outputs, by role (items/:n/<role>)" }),
});

/** The one view of a job, the same for every resource (server/job-view.ts). */
export const JobSchema = z
  .object({
    id: z.string(),
    kind: z.enum(JOB_KINDS.map((k) => k.name) as [string, ...string[]]),
    status: z.enum(JOB_STATUSES),
    model: z.string(),
    options: z
      .record(z.string(), z.unknown())
      .meta({ description: "the request's settings, defaults filled in" }),
    seed: z
      .number()
      .int()
      .optional()
      .meta({ description: "generations: the noise seed used (drawn when the request had none)" }),
    progress: z.number().min(0).max(1),
    step: z.number().int().meta({ description: "steps done: sampler steps, else items finished" }),
    steps: z.number().int().meta({ description: "steps in all: sampler steps, else items" }),
    attempts: z
      .number()
      .int()
      .meta({ description: "times started; >1 after a restart resumed it" }),
    error: ErrorSchema.shape.error.nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    timings: z.object({ queuedMs: z.number().nullable(), runMs: z.number().nullable() }),
    items: z.array(ItemSchema),
    outputs: z
      .array(z.object({ index: z.number().int(), sha256: z.string(), url: z.string() }))
      .meta({ description: "each succeeded item's main output" }),
  })
  .meta({ id: "Job" });

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

export const KeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(KEY_ROLES),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: "ApiKey" });

export const CreateKeySchema = z.object({
  name: z.string().min(1).max(200),
  role: z.enum(KEY_ROLES).default("user"),
});

export const HealthSchema = z
  .object({
    status: z.literal("ok"),
    uptimeSeconds: z.number(),
    jobsRunning: z.number().int(),
  })
  .meta({ id: "Health" });

export const ModelsSchema = z
  .object({ models: z.array(z.record(z.string(), z.unknown())) })
  .meta({ id: "Models" });

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

// ---------------------------------------------------------------- response schemas (OpenAPI)

/** The one list envelope of every resource. */
export const JobListSchema = z
  .object({
    jobs: z.array(JobSchema),
    next: z.string().nullable().meta({ description: "the next page (?before=), null on the last" }),
  })
  .meta({ id: "JobList" });

export const DeletedSchema = z
  .object({ id: z.string(), deleted: z.literal(true) })
  .meta({ id: "Deleted" });

export const RunSchema = z
  .object({
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
  })
  .meta({ id: "Run" });

export const RunListSchema = z
  .object({ runs: z.array(RunSchema), next: z.string().nullable() })
  .meta({ id: "RunList" });
export const RunEnvelopeSchema = z.object({ run: RunSchema }).meta({ id: "RunEnvelope" });
export const RunDetailSchema = z
  .object({
    run: RunSchema,
    metrics: z.array(z.string()),
    artifacts: z.array(z.record(z.string(), z.unknown())),
    lastStatus: z.record(z.string(), z.unknown()).nullable(),
    // A union, not .nullable(): the document gives it as anyOf [Run, null] (zod-to-openapi writes a
    // nullable $ref as allOf [Run, {type: [object, null]}], which no null satisfies).
    autoencoder: z.union([RunSchema, z.null()]),
    diffusionRuns: z.array(RunSchema),
  })
  .meta({ id: "RunDetail" });
export const RunImportSchema = z
  .object({
    run: RunSchema,
    accepted: z.number().int(),
    added: z.number().int(),
    rejected: z.array(z.object({ line: z.number().int(), reason: z.string() })),
  })
  .meta({ id: "RunImport" });
export const MetricsSchema = z
  .object({
    run: z.string(),
    name: z.string(),
    points: z.array(z.object({ step: z.number(), value: z.number(), time: z.number().nullable() })),
  })
  .meta({ id: "Metrics" });
export const KeyListSchema = z.object({ keys: z.array(KeySchema) }).meta({ id: "KeyList" });
export const KeyCreatedSchema = z
  .object({ key: KeySchema, secret: z.string() })
  .meta({ id: "KeyCreated" });
export const KeyEnvelopeSchema = z.object({ key: KeySchema }).meta({ id: "KeyEnvelope" });
