// The JSON the admin page reads under /admin/api (a session is required): runs, the comparison
// of two runs (training/runs/run-compare.ts), and sample videos of both runs' bundles, queued
// through the same use case as POST /v1/generations (work/submit-job.ts queueJobs) for the same
// label and seed and served with the one file-sending helper. A sample may start from an image
// or continue a clip (multipart with `image` or `video`, as POST /v1/generations takes them): the
// upload is checked before the 202 and each side's generation keeps its own copy.

import { createHash, randomInt } from "node:crypto";
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import { extname, join } from "node:path";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { isAppError } from "../../app-error.ts";
import { BROWSER_VIDEO_FORMATS } from "../../pipeline/media/output-formats.ts";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import { sha256File, uploadsDir } from "../../pipeline/work/datadir.ts";
import { checkClipInput, checkImageInput } from "../../pipeline/work/generation-input.ts";
import {
  type GenerationInput,
  type GenerationOptions,
  generationJob,
  type PlannedGeneration,
  planGeneration,
} from "../../pipeline/work/generation-job.ts";
import { kindNamed } from "../../pipeline/work/job-kinds.ts";
import type { JobRunner } from "../../pipeline/work/job-runner.ts";
import { queueJobs } from "../../pipeline/work/submit-job.ts";
import { newJobId } from "../../store/job-rows.ts";
import { RUN_KINDS } from "../../store/schema.ts";
import type { JobWithItems, Store } from "../../store/store.ts";
import type { RunReader } from "../../training/runs/run-compare.ts";
import {
  brief,
  buildComparison,
  defaultPair,
  FD_METRICS,
  type RunInfo,
  type RunKind,
  variantOf,
} from "../../training/runs/run-compare.ts";
import { buildGrid } from "../../training/runs/run-grid.ts";
import { LATENT_CHANNELS_FILE, latentChannelsFile } from "../../training/runs/run-pictures.ts";
import type { AdminSessions } from "../admin-session.ts";
import { ApiError } from "../api-error.ts";
import { type Config, submitDepsOf } from "../config.ts";
import { describeZodError } from "../schemas.ts";
import { sendFile } from "../send-file.ts";
import { receiveUploads, type SavedUpload } from "../uploads.ts";

import { type AdminEnv, sessionAdmin } from "./admin-page-session.ts";

function manifestRunId(runs: Record<string, unknown> | undefined, role: string): string | null {
  const r = runs?.[role] as { run_id?: unknown; id?: unknown } | undefined;
  const id = r?.run_id ?? r?.id;
  return typeof id === "string" ? id : null;
}

/** Why no bundle serves a run, naming bundles of its autoencoder with another denoiser. */
export function noBundleReason(
  runtime: ModelRuntime,
  diffusionRunId: string | null,
  autoencoderRunId: string | null,
): string {
  const others = runtime
    .bundles()
    .map((b) => ({ name: b.name, runs: runtime.loaded(b.name).manifest.runs }))
    .filter((m) => autoencoderRunId && manifestRunId(m.runs, "autoencoder") === autoencoderRunId)
    .map((m) => `${m.name} (denoiser from ${manifestRunId(m.runs, "diffusion") ?? "?"})`);
  const run = diffusionRunId ?? autoencoderRunId ?? "?";
  return others.length
    ? `no loaded bundle has the denoiser of run ${run}; bundles of its autoencoder ${autoencoderRunId}: ${others.join(", ")}`
    : `no loaded bundle names run ${run}${autoencoderRunId && autoencoderRunId !== run ? ` or ${autoencoderRunId}` : ""} in its manifest (runs)`;
}

/** The bundle that serves a compared run: the one whose manifest names the diffusion run
 * (runs.diffusion.run_id), else one that names its autoencoder run and no other diffusion run. */
export function bundleForRun(
  runtime: ModelRuntime,
  diffusionRunId: string | null,
  autoencoderRunId: string | null,
): { name: string; matchedBy: "diffusion" | "autoencoder" } | null {
  const runIdOf = manifestRunId;
  const names = runtime
    .bundles()
    .map((b) => b.name)
    .sort();
  const manifests = names.map((name) => ({ name, runs: runtime.loaded(name).manifest.runs }));
  if (diffusionRunId) {
    const hit = manifests.find((m) => runIdOf(m.runs, "diffusion") === diffusionRunId);
    if (hit) return { name: hit.name, matchedBy: "diffusion" };
  }
  if (autoencoderRunId) {
    const hit = manifests.find(
      (m) =>
        runIdOf(m.runs, "autoencoder") === autoencoderRunId &&
        (diffusionRunId === null || runIdOf(m.runs, "diffusion") === null),
    );
    if (hit) return { name: hit.name, matchedBy: "autoencoder" };
  }
  return null;
}

/** The format of sample videos: one the page's <video> element plays. */
const SAMPLE_FORMAT = "webm";

/** A side is a run (a, b: the bundle that serves it) or a loaded bundle (models.a, models.b). */
const SamplesRequestSchema = z.strictObject({
  a: z.string().min(1).max(200).optional(),
  b: z.string().min(1).max(200).optional(),
  models: z
    .strictObject({ a: z.string().min(1).max(200), b: z.string().min(1).max(200) })
    .optional(),
  label: z.union([z.string().min(1).max(200), z.number().int().nonnegative()]),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  steps: z.number().int().positive().max(1000).optional(),
  frames: z.number().int().positive().optional(),
  output: z.enum(["continuation", "whole"]).optional(),
});

/** The same request as a multipart form (with an `image` or `video` file): text fields, the
 * bundles as models.a and models.b. */
const SamplesFormSchema = z.strictObject({
  a: z.string().min(1).max(200).optional(),
  b: z.string().min(1).max(200).optional(),
  "models.a": z.string().min(1).max(200).optional(),
  "models.b": z.string().min(1).max(200).optional(),
  label: z.string().min(1).max(200),
  seed: z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  steps: z.coerce.number().int().positive().max(1000).optional(),
  frames: z.coerce.number().int().positive().optional(),
  output: z.enum(["continuation", "whole"]).optional(),
});

type SamplesRequest = z.infer<typeof SamplesRequestSchema>;

/** A form's fields as the JSON request (models.a and models.b together, a label of digits an id). */
function samplesRequestOf(form: z.infer<typeof SamplesFormSchema>): SamplesRequest {
  const { "models.a": ma, "models.b": mb, label, ...rest } = form;
  if ((ma === undefined) !== (mb === undefined)) {
    throw new ApiError("invalid_field", "models.a and models.b: give both or neither", 400);
  }
  return {
    ...rest,
    label: /^\d+$/.test(label) ? Number(label) : label,
    ...(ma !== undefined && mb !== undefined ? { models: { a: ma, b: mb } } : {}),
  };
}

const GridQuerySchema = z.strictObject({
  group: z.string().min(1).max(300).optional(),
});

const RunsQuerySchema = z.strictObject({
  kind: z.enum(RUN_KINDS).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** The generations' kind (pipeline/work/job-kinds.ts): samples are generations. */
const GENERATE = kindNamed("generate");

function sampleJson({ job: g }: JobWithItems) {
  return {
    id: g.id,
    model: g.model,
    status: g.status,
    step: g.step,
    steps: g.steps ?? 0,
    seed: (g.options as unknown as GenerationOptions).seed,
    label: (g.options as unknown as GenerationOptions).labelName,
    error: g.errorCode ? { code: g.errorCode, message: g.errorMessage ?? "" } : null,
    content: g.status === "succeeded" ? `/admin/api/samples/${g.id}/content` : null,
  };
}

/** A loaded bundle as the Samples section lists it. */
export interface SampleBundle {
  name: string;
  variant: string;
  canGenerate: boolean;
  classes: string[];
  runs: { autoencoder: string | null; diffusion: string | null };
}

/** The Samples section's default pair of loaded bundles that can generate: the baseline bundle
 * against the SE one (the default model when it is an SE bundle), by name; without one of those
 * variants, the first two (or the one) that can generate. Null when none can. */
export function defaultSampleBundles(
  bundles: readonly SampleBundle[],
  defaultModel: string | null = null,
): { a: string; b: string } | null {
  const gen = [...bundles].filter((b) => b.canGenerate).sort((x, y) => (x.name < y.name ? -1 : 1));
  if (gen.length === 0) return null;
  const preferred = gen.find((b) => b.name === defaultModel && b.variant === "se");
  const a = gen.find((b) => b.variant === "baseline") ?? gen[0];
  const b = preferred ?? gen.find((x) => x.variant === "se") ?? gen.find((x) => x !== a) ?? gen[0];
  return { a: (a as SampleBundle).name, b: (b as SampleBundle).name };
}

export interface AdminPageDeps {
  /** The store of jobs and keys (SQLite or PostgreSQL). */
  db: Store;
  runtime: ModelRuntime;
  /** The job runner; without it no samples are made. */
  runner?: JobRunner | undefined;
  config: Config;
  runs: RunReader;
  sessions?: AdminSessions;
}

export function adminApiRoutes(deps: AdminPageDeps, sessions: AdminSessions) {
  const { db, runtime, runner: generations, config, runs } = deps;
  const submitDeps = submitDepsOf(db, runtime, config);
  const adminOf = (c: Context) => sessionAdmin(db, sessions, c);
  const api = new Hono<AdminEnv>();
  api.use(async (c, next) => {
    const key = await adminOf(c);
    if (!key) {
      throw new ApiError(
        "not_signed_in",
        "sign in at /admin with an admin API key (the session may have expired)",
        401,
      );
    }
    c.set("adminKey", key);
    await next();
  });

  const describeRun = (r: RunInfo) => {
    const finalOf = (name: string) => {
      const points = runs.getMetrics(r.id, name).filter((p) => Number.isFinite(p.value));
      const last = points.at(-1);
      return last
        ? { name: name.split("/")[1] as string, step: last.step, value: last.value }
        : null;
    };
    const final =
      r.kind === "diffusion"
        ? FD_METRICS.reduce<ReturnType<typeof finalOf>>((f, m) => f ?? finalOf(m), null)
        : finalOf("val/psnr");
    return { ...brief(r), variant: variantOf(runs, r), final };
  };

  api.get("/runs", (c) => {
    const parsed = RunsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const { kind, limit } = parsed.data;
    const list = runs.listRuns({ ...(kind ? { kind: kind as RunKind } : {}), limit });
    return c.json({ runs: list.map(describeRun), default: defaultPair(runs) });
  });

  const bundleInfo = (side: {
    diffusion: { id: string } | null;
    autoencoder: { id: string } | null;
  }) => {
    const hit = bundleForRun(runtime, side.diffusion?.id ?? null, side.autoencoder?.id ?? null);
    if (!hit) {
      return {
        model: null,
        matchedBy: null,
        canGenerate: false,
        classes: [] as string[],
        reason: noBundleReason(runtime, side.diffusion?.id ?? null, side.autoencoder?.id ?? null),
      };
    }
    const info = runtime.bundleInfo(hit.name);
    return {
      model: hit.name,
      matchedBy: hit.matchedBy,
      canGenerate: info.generate !== null,
      classes: info.classes,
      reason:
        info.generate === null
          ? `bundle "${hit.name}" has no denoiser.onnx: it cannot generate (422 cannot_generate)`
          : null,
    };
  };

  const sampleBundles = (): SampleBundle[] =>
    runtime
      .bundles()
      .map((b) => {
        const runs = runtime.loaded(b.name).manifest.runs;
        return {
          name: b.name,
          variant: b.variant,
          canGenerate: b.generate !== null,
          classes: b.classes,
          runs: {
            autoencoder: manifestRunId(runs, "autoencoder"),
            diffusion: manifestRunId(runs, "diffusion"),
          },
        };
      })
      .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));

  // The loaded bundles, for the Samples section's pickers, and its default pair.
  api.get("/bundles", (c) => {
    const bundles = sampleBundles();
    return c.json({ bundles, default: defaultSampleBundles(bundles, config.defaultModel) });
  });

  const pictureUrl = (run: RunInfo) =>
    latentChannelsFile(run.folder)
      ? `/admin/api/runs/${encodeURIComponent(run.id)}/${LATENT_CHANNELS_FILE}`
      : null;

  // An autoencoder run's latent channels (latent-channels.png in its folder), when it is there.
  api.get(`/runs/:id/${LATENT_CHANNELS_FILE}`, async (c) => {
    const id = c.req.param("id");
    const run = runs.getRun(id);
    if (!run) throw new ApiError("run_not_found", `no run "${id}"`, 404);
    const file = latentChannelsFile(run.folder);
    if (!file) {
      throw new ApiError(
        "picture_not_found",
        `run "${id}" has no ${LATENT_CHANNELS_FILE} in its folder (the autoencoder evaluation writes it)`,
        404,
      );
    }
    const body = await readFile(file);
    return c.body(body, 200, {
      "content-type": "image/png",
      etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`,
    });
  });

  api.get("/compare", (c) => {
    const q = c.req.query();
    let a = q.a;
    let b = q.b;
    if (!a && !b) {
      const pair = defaultPair(runs);
      if (!pair) {
        throw new ApiError("no_runs", "there is no baseline/SE pair of runs to compare yet", 404);
      }
      ({ a, b } = pair);
    } else if (!a || !b) {
      throw new ApiError("invalid_field", `${a ? "b" : "a"}: give both runs, or neither`, 400);
    }
    const comparison = buildComparison(runs, a, b);
    return c.json({
      ...comparison,
      bundles: { a: bundleInfo(comparison.a), b: bundleInfo(comparison.b) },
    });
  });

  // The experiment view: the latest group of diffusion runs with two arms (or ?group=<key>),
  // arms over seeds (training/runs/run-grid.ts).
  api.get("/grid", (c) => {
    const parsed = GridQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    return c.json(buildGrid(runs, parsed.data.group, pictureUrl));
  });

  api.post("/samples", async (c) => {
    if (!generations) {
      throw new ApiError("generations_unavailable", "this server does not run generations", 503);
    }
    const type = c.req.header("content-type") ?? "";
    const isForm = /^multipart\/form-data/i.test(type);
    if (!isForm && !type.includes("application/json")) {
      throw new ApiError(
        "unsupported_media_type",
        "send the request as application/json, or multipart/form-data with an image or video",
        415,
      );
    }
    let req: SamplesRequest;
    let upload: SavedUpload | null = null;
    const uploadId = newJobId(GENERATE.idPrefix);
    if (isForm) {
      const received = await receiveUploads(c, {
        dataDir: config.dataDir,
        jobId: uploadId,
        maxFiles: 2,
        maxBytes: config.maxUploadBytes,
        fileFields: ["image", "video"],
        filesOptional: true,
        fields: (fields) => {
          const parsed = SamplesFormSchema.safeParse(fields);
          if (!parsed.success) {
            throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
          }
          return samplesRequestOf(parsed.data);
        },
        check: async (path, _name, o, field) => {
          if (field === "image") return checkImageInput(path);
          // A clip is checked against each loaded bundle it is sent to.
          for (const m of [o.models?.a, o.models?.b]) {
            if (m !== undefined && runtime.bundles().some((b) => b.name === m)) {
              await checkClipInput(runtime.loaded(m), path, config.maxSeconds);
            }
          }
        },
      });
      req = received.options;
      upload = received.uploads[0] ?? null;
      if (received.uploads.length > 1) {
        await rm(uploadsDir(config.dataDir, uploadId), { recursive: true, force: true });
        throw new ApiError("invalid_field", "image and video: give one file, not both", 400);
      }
    } else {
      const body = await c.req.json().catch(() => {
        throw new ApiError("invalid_json", "the body is not JSON", 400);
      });
      const parsed = SamplesRequestSchema.safeParse(body);
      if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
      req = parsed.data;
    }
    try {
      return await queueSamples(c, req, upload);
    } finally {
      await rm(uploadsDir(config.dataDir, uploadId), { recursive: true, force: true });
    }
  });

  /** Plans both sides (each with its own copy of the upload, if any) and queues them. */
  const queueSamples = async (
    c: Context<AdminEnv>,
    req: SamplesRequest,
    upload: SavedUpload | null,
  ) => {
    if (!generations) {
      throw new ApiError("generations_unavailable", "this server does not run generations", 503);
    }
    if (req.output !== undefined && upload?.field !== "video") {
      throw new ApiError("invalid_field", "output: only when continuing a video", 400);
    }
    const input: Omit<GenerationInput, "contextLatents" | "contextMode"> | undefined = upload
      ? {
          kind: upload.field === "image" ? "image" : "video",
          source: upload.sourceName,
          sha256: await sha256File(upload.path),
          file: `input${extname(upload.path).toLowerCase()}`,
          output: req.output ?? "whole", // the page shows the clip and its continuation
        }
      : undefined;
    const seed = req.seed ?? randomInt(0, 2 ** 47);
    const key = c.var.adminKey;
    const byModel = req.models !== undefined;
    if (byModel ? req.a !== undefined || req.b !== undefined : !req.a || !req.b) {
      throw new ApiError(
        "invalid_field",
        "give the runs a and b, or the bundles models: {a, b}, not both",
        400,
      );
    }
    const loaded = new Set(runtime.bundles().map((b) => b.name));
    const plan = (side: "a" | "b", runId: string | null, model: string) => {
      try {
        const p = planGeneration(runtime, {
          model,
          label: req.label,
          seed,
          ...(req.steps !== undefined ? { steps: req.steps } : {}),
          ...(req.frames !== undefined ? { frames: req.frames } : {}),
          n: 1,
          format: SAMPLE_FORMAT,
          ...(input ? { input } : {}),
        });
        return { side, runId, model, plan: p, id: newJobId(GENERATE.idPrefix), error: null };
      } catch (err) {
        if (isAppError(err, "invalid_field")) {
          throw new ApiError("invalid_field", `${side} (${model}): ${err.message}`, 400);
        }
        if (isAppError(err, "cannot_generate")) {
          return { side, runId, model, error: { code: err.code, message: err.message } };
        }
        throw err;
      }
    };
    // Check both sides before making anything, so a request makes both samples or none of a side
    // that cannot.
    const plans = (["a", "b"] as const).map((side) => {
      if (req.models) {
        const model = req.models[side];
        if (!loaded.has(model)) {
          throw new ApiError(
            "invalid_field",
            `models.${side}: no loaded bundle "${model}" (loaded: ${[...loaded].sort().join(", ") || "none"})`,
            400,
          );
        }
        const runsOf = runtime.loaded(model).manifest.runs;
        return plan(side, manifestRunId(runsOf, "diffusion"), model);
      }
      const runId = req[side] as string;
      const run = runs.getRun(runId);
      if (!run) throw new ApiError("run_not_found", `${side}: no run "${runId}"`, 404);
      const dId = run.kind === "diffusion" ? run.id : null;
      const aeId = run.kind === "diffusion" ? run.autoencoderRunId : run.id;
      const hit = bundleForRun(runtime, dId, aeId);
      if (!hit) {
        return {
          side,
          runId,
          model: null,
          error: { code: "no_bundle", message: noBundleReason(runtime, dId, aeId) },
        };
      }
      return plan(side, runId, hit.name);
    });
    const runnable = plans.filter((p) => p.error === null);
    if (runnable.length === 0) {
      const codes = plans.map((p) => p.error?.code);
      throw new ApiError(
        codes.includes("cannot_generate") ? "cannot_generate" : "no_bundle",
        plans.map((p) => `${p.side}: ${p.error?.message}`).join("; "),
        422,
      );
    }
    const planned = runnable.flatMap((p) =>
      "plan" in p && p.plan ? [{ ...generationJob(p.plan as PlannedGeneration), id: p.id }] : [],
    );
    // Each side's generation gets its own copy of the input, in its upload folder.
    const copies = input && upload ? planned.map((p) => uploadsDir(config.dataDir, p.id)) : [];
    let rows: JobWithItems[];
    try {
      for (const dir of copies) {
        await mkdir(dir, { recursive: true });
        await copyFile((upload as SavedUpload).path, join(dir, (input as GenerationInput).file));
      }
      rows = await queueJobs(submitDeps, GENERATE, key.id, planned);
    } catch (err) {
      for (const dir of copies) await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const samples = plans.map((p) => {
      if (p.error !== null || !("plan" in p) || !p.plan) {
        return { side: p.side, run: p.runId, model: p.model, sample: null, error: p.error };
      }
      const row = rows[runnable.indexOf(p)] as JobWithItems;
      return { side: p.side, run: p.runId, model: p.model, sample: sampleJson(row), error: null };
    });
    generations.notify();
    return c.json({ seed, label: req.label, samples }, 202);
  };

  const sampleRow = async (id: string) => {
    const g = await db.getJob(id);
    if (g?.job.kind !== GENERATE.name) {
      throw new ApiError("sample_not_found", `no sample "${id}"`, 404);
    }
    return g;
  };

  api.get("/samples/:id", async (c) => c.json(sampleJson(await sampleRow(c.req.param("id")))));

  api.get("/samples/:id/content", async (c) => {
    const { job: g, items } = await sampleRow(c.req.param("id"));
    const format = (g.options as unknown as GenerationOptions).format;
    const video = items[0]?.outputs?.video;
    if (g.status !== "succeeded" || !video) {
      throw new ApiError("item_not_ready", `sample "${g.id}" is ${g.status}`, 409);
    }
    if (!BROWSER_VIDEO_FORMATS.includes(format)) {
      throw new ApiError("not_a_video", `sample "${g.id}" is ${format}, not a video`, 415);
    }
    return sendFile(c, video, {
      format,
      sha256: items[0]?.outputSha256 ?? "",
      missing: "the sample file is gone from the data dir",
    });
  });

  return api;
}
