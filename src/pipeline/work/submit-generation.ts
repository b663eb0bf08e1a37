// Submitting generations: the one use case behind POST /v1/generations and the admin page's
// sample videos. It picks the model (the request's, else the default), checks the request
// against the bundle and fills in its settings (generate.ts resolveSettings), replays a request
// whose Idempotency-Key was seen before, applies the quotas (per key: queued + running; all keys:
// queued), and queues the rows for the generation runner. Errors are AppErrors: 400
// "invalid_field" naming the field, 404 "unknown_model", 422 "cannot_generate", 422 "idempotency_key_reused", 429
// "too_many_generations" / "queue_full" with Retry-After.

import { createHash, randomInt } from "node:crypto";
import { AppError } from "../../app-error.ts";
import type { Db } from "../../store/db.ts";
import {
  countGenerations,
  generationByIdempotencyKey,
  insertGeneration,
  newGenerationId,
} from "../../store/generation-rows.ts";
import { ACTIVE_STATUSES, type GenerationRow } from "../../store/schema.ts";
import { type GenerateFormat, type OutputMode, resolveSettings } from "../generate/generate.ts";
import type { SamplerMethod } from "../generate/sampler.ts";
import { isPipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import type { GenerationInput, GenerationOptions } from "./generation-runner.ts";

/** What a client asks for (already shape-checked, e.g. by server/schemas.ts). */
export interface GenerationRequest {
  /** A bundle name; omitted: defaultGenerationModel. */
  model?: string | undefined;
  label: string | number;
  seed?: number | undefined;
  steps?: number | undefined;
  guidance?: number | undefined;
  method?: SamplerMethod | undefined;
  frames?: number | undefined;
  n?: number | undefined;
  format: GenerateFormat;
  /** An image, clip or encoding's latents to start from, already stored and checked (the route
   * does that); its sha256 makes a retry with other bytes another request. */
  input?: Omit<GenerationInput, "contextLatents" | "contextMode"> | undefined;
  /** What an extension's output holds (default "continuation"); only with a video input. */
  output?: OutputMode | undefined;
}

export interface SubmitDeps {
  db: Db;
  runtime: ModelRuntime;
  /** DIFFUSABLE_DEFAULT_MODEL, when set. */
  defaultModel: string | null;
  /** Most queued + running generations per API key. */
  maxActivePerKey: number;
  /** Most queued generations over all keys. */
  maxQueued: number;
}

/** A checked request: the bundle it runs on and its settings, every default filled in. */
export interface PlannedGeneration {
  model: string;
  options: GenerationOptions;
  /** The row's id when the caller chose it (the folder its input was stored in). */
  id?: string;
}

/**
 * The bundle a generation uses when the request names none: `configured` (the server's
 * DIFFUSABLE_DEFAULT_MODEL) when given, else the loaded bundle of variant "se" (the first by
 * name when there are several, preferring those that can generate), else null.
 */
export function defaultGenerationModel(
  rt: ModelRuntime,
  configured?: string | null,
): string | null {
  if (configured) return configured;
  const se = rt
    .bundles()
    .filter((b) => b.variant === "se")
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return (se.find((b) => b.generate !== null) ?? se[0])?.name ?? null;
}

/**
 * The one default-model rule of every resource (encodings, decodings, reconstructions,
 * generations, the CLI): the requested bundle, else defaultGenerationModel. Errors: 400
 * "invalid_field" when there is no default, 404 "unknown_model" naming the known models.
 */
export function resolveModel(
  runtime: ModelRuntime,
  requested: string | undefined,
  configured: string | null = null,
): ReturnType<ModelRuntime["loaded"]> {
  const modelName = requested ?? defaultGenerationModel(runtime, configured);
  if (modelName === null) {
    const known = runtime.bundles().map((m) => m.name);
    throw new AppError(
      "invalid_field",
      `model: required: no default model (DIFFUSABLE_DEFAULT_MODEL is unset and no loaded bundle has variant "se"); known models: ${known.length ? known.join(", ") : "(none)"}`,
      400,
    );
  }
  try {
    return runtime.loaded(modelName);
  } catch (err) {
    if (isPipelineError(err, "unknown_model")) {
      const from = requested === undefined ? " (the default, DIFFUSABLE_DEFAULT_MODEL)" : "";
      throw new AppError("unknown_model", `model: ${err.message}${from}`, 404);
    }
    throw err;
  }
}

/** Picks the model and resolves the settings; a seed is drawn when the request has none. */
export function planGeneration(
  runtime: ModelRuntime,
  req: GenerationRequest,
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

const retry = { headers: { "Retry-After": "10" } };

/** Checks the quotas for `count` more generations of this key, then queues them in order. */
export function queueGenerations(
  deps: SubmitDeps,
  keyId: string | null,
  plans: PlannedGeneration[],
  request?: { idempotencyKey: string | null; requestSha256: string },
): GenerationRow[] {
  const { db } = deps;
  const active = keyId === null ? 0 : countGenerations(db, ACTIVE_STATUSES, keyId);
  if (active + plans.length > deps.maxActivePerKey) {
    throw new AppError(
      "too_many_generations",
      `this key has ${active} queued or running generations; the limit is ${deps.maxActivePerKey}`,
      429,
      retry,
    );
  }
  const queued = countGenerations(db, ["queued"]);
  if (queued + plans.length > deps.maxQueued) {
    throw new AppError(
      "queue_full",
      `${queued} generations are queued; the limit is ${deps.maxQueued}`,
      429,
      retry,
    );
  }
  return plans.map((p) =>
    insertGeneration(db, {
      id: p.id ?? newGenerationId(),
      keyId,
      model: p.model,
      options: p.options as unknown as Record<string, unknown>,
      steps: p.options.steps,
      ...(request ?? {}),
    }),
  );
}

/**
 * One request of one key: the generation it queued, or (replayed: true) the one an earlier
 * request with the same Idempotency-Key queued. The same key with a different request is 422.
 */
export function submitGeneration(
  deps: SubmitDeps,
  keyId: string,
  req: GenerationRequest,
  idempotencyKey?: string,
  id?: string,
): { row: GenerationRow; replayed: boolean } {
  const requestSha256 = createHash("sha256").update(JSON.stringify(req)).digest("hex");
  const replay = () => {
    if (idempotencyKey === undefined) return null;
    const found = generationByIdempotencyKey(deps.db, keyId, idempotencyKey);
    if (found && found.requestSha256 !== requestSha256) {
      throw new AppError(
        "idempotency_key_reused",
        `Idempotency-Key "${idempotencyKey}" was used for a different request (${found.id})`,
        422,
      );
    }
    return found;
  };
  const earlier = replay();
  if (earlier) return { row: earlier, replayed: true };
  const plan = planGeneration(deps.runtime, req, deps.defaultModel);
  if (id !== undefined) plan.id = id;
  try {
    const [row] = queueGenerations(deps, keyId, [plan], {
      idempotencyKey: idempotencyKey ?? null,
      requestSha256,
    });
    return { row: row as GenerationRow, replayed: false };
  } catch (err) {
    // A concurrent retry with the same Idempotency-Key inserted first: answer with its row.
    const raced = err instanceof AppError ? null : replay();
    if (!raced) throw err;
    return { row: raced, replayed: true };
  }
}
