// The JSON the admin page reads under /admin/api (a session is required): runs, the comparison
// of two runs (training/runs/run-compare.ts), and sample videos of both runs' bundles, queued
// through the same use case as POST /v1/generations (work/submit-generation.ts) for the same
// label and seed and served with the one file-sending helper.

import { randomInt } from "node:crypto";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { isAppError } from "../../app-error.ts";
import { BROWSER_VIDEO_FORMATS } from "../../pipeline/media/output-formats.ts";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import type { GenerationOptions, GenerationRunner } from "../../pipeline/work/generation-runner.ts";
import { planGeneration, queueGenerations } from "../../pipeline/work/submit-generation.ts";
import type { Db } from "../../store/db.ts";
import { getGeneration } from "../../store/generation-rows.ts";
import { type GenerationRow, RUN_KINDS } from "../../store/schema.ts";
import type { RunReader } from "../../training/runs/run-compare.ts";
import {
  brief,
  buildComparison,
  defaultPair,
  type RunInfo,
  type RunKind,
  variantOf,
} from "../../training/runs/run-compare.ts";
import { buildGrid } from "../../training/runs/run-grid.ts";
import type { AdminSessions } from "../admin-session.ts";
import { ApiError } from "../api-error.ts";
import { type Config, submitDepsOf } from "../config.ts";
import { describeZodError } from "../schemas.ts";
import { sendFile } from "../send-file.ts";

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

const SamplesRequestSchema = z.strictObject({
  a: z.string().min(1).max(200),
  b: z.string().min(1).max(200),
  label: z.union([z.string().min(1).max(200), z.number().int().nonnegative()]),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  steps: z.number().int().positive().max(1000).optional(),
});

const GridQuerySchema = z.strictObject({
  group: z.string().min(1).max(300).optional(),
});

const RunsQuerySchema = z.strictObject({
  kind: z.enum(RUN_KINDS).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

function sampleJson(g: GenerationRow) {
  return {
    id: g.id,
    model: g.model,
    status: g.status,
    step: g.step,
    steps: g.steps,
    seed: (g.options as unknown as GenerationOptions).seed,
    label: (g.options as unknown as GenerationOptions).labelName,
    error: g.errorCode ? { code: g.errorCode, message: g.errorMessage ?? "" } : null,
    content: g.status === "succeeded" ? `/admin/api/samples/${g.id}/content` : null,
  };
}

export interface AdminPageDeps {
  db: Db;
  runtime: ModelRuntime;
  generations?: GenerationRunner | undefined;
  config: Config;
  runs: RunReader;
  sessions?: AdminSessions;
}

export function adminApiRoutes(deps: AdminPageDeps, sessions: AdminSessions) {
  const { db, runtime, generations, config, runs } = deps;
  const submitDeps = submitDepsOf(db, runtime, config);
  const adminOf = (c: Context) => sessionAdmin(db, sessions, c);
  const api = new Hono<AdminEnv>();
  api.use(async (c, next) => {
    const key = adminOf(c);
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
        ? (finalOf("eval/fvd_i3d") ?? finalOf("eval/fd_rand3d"))
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
    return c.json(buildGrid(runs, parsed.data.group));
  });

  api.post("/samples", async (c) => {
    if (!generations) {
      throw new ApiError("generations_unavailable", "this server does not run generations", 503);
    }
    if (!(c.req.header("content-type") ?? "").includes("application/json")) {
      throw new ApiError("unsupported_media_type", "send the request as application/json", 415);
    }
    const body = await c.req.json().catch(() => {
      throw new ApiError("invalid_json", "the body is not JSON", 400);
    });
    const parsed = SamplesRequestSchema.safeParse(body);
    if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
    const req = parsed.data;
    const seed = req.seed ?? randomInt(0, 2 ** 47);
    const key = c.var.adminKey;
    const sides = [
      ["a", req.a],
      ["b", req.b],
    ] as const;
    // Check both sides before making anything, so a request makes both samples or none of a side
    // that cannot.
    const plans = sides.map(([side, runId]) => {
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
          error: {
            code: "no_bundle",
            message: noBundleReason(runtime, dId, aeId),
          },
        };
      }
      try {
        const plan = planGeneration(runtime, {
          model: hit.name,
          label: req.label,
          seed,
          ...(req.steps !== undefined ? { steps: req.steps } : {}),
          n: 1,
          format: SAMPLE_FORMAT,
        });
        return { side, runId, model: hit.name, plan, error: null };
      } catch (err) {
        if (isAppError(err, "invalid_field")) {
          throw new ApiError("invalid_field", `${side} (${hit.name}): ${err.message}`, 400);
        }
        if (isAppError(err, "cannot_generate")) {
          return { side, runId, model: hit.name, error: { code: err.code, message: err.message } };
        }
        throw err;
      }
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
    const rows = queueGenerations(
      submitDeps,
      key.id,
      runnable.flatMap((p) => ("plan" in p && p.plan ? [p.plan] : [])),
    );
    const samples = plans.map((p) => {
      if (p.error !== null || !("plan" in p) || !p.plan) {
        return { side: p.side, run: p.runId, model: p.model, sample: null, error: p.error };
      }
      const row = rows[runnable.indexOf(p)] as GenerationRow;
      return { side: p.side, run: p.runId, model: p.model, sample: sampleJson(row), error: null };
    });
    generations.notify();
    return c.json({ seed, label: req.label, samples }, 202);
  });

  const sampleRow = (id: string) => {
    const g = getGeneration(db, id);
    if (!g) throw new ApiError("sample_not_found", `no sample "${id}"`, 404);
    return g;
  };

  api.get("/samples/:id", (c) => c.json(sampleJson(sampleRow(c.req.param("id")))));

  api.get("/samples/:id/content", async (c) => {
    const g = sampleRow(c.req.param("id"));
    const format = (g.options as unknown as GenerationOptions).format;
    if (g.status !== "succeeded" || !g.outputs?.[0]) {
      throw new ApiError("not_ready", `sample "${g.id}" is ${g.status}`, 409);
    }
    if (!BROWSER_VIDEO_FORMATS.includes(format)) {
      throw new ApiError("not_a_video", `sample "${g.id}" is ${format}, not a video`, 415);
    }
    return sendFile(c, g.outputs[0], {
      format,
      sha256: g.outputSha256?.[0] ?? "",
      missing: "the sample file is gone from the data dir",
    });
  });

  return api;
}
