// The admin page (/admin): a sign-in form that trades an admin API key for an HttpOnly session
// cookie (admin-session.ts), the page's static files (src/server/admin/) and the chart library
// from node_modules (/admin/vendor/uplot/...), and the JSON the page reads under /admin/api:
// runs, the comparison of two runs (run-compare.ts), and sample videos of both runs' bundles made
// by the generation runner for the same label and seed.

import { createHash, randomInt } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import { resolveSettings } from "../../pipeline/generate/generate.ts";
import { BROWSER_VIDEO_FORMATS } from "../../pipeline/media/output-formats.ts";
import { isPipelineError } from "../../pipeline/pipeline-error.ts";
import type { ModelRuntime } from "../../pipeline/runtime.ts";
import type { GenerationOptions, GenerationRunner } from "../../pipeline/work/generation-runner.ts";
import { findKeyBySecret } from "../../store/api-keys.ts";
import type { Db } from "../../store/db.ts";
import {
  countGenerations,
  getGeneration,
  insertGeneration,
  newGenerationId,
} from "../../store/generation-rows.ts";
import {
  ACTIVE_STATUSES,
  type ApiKeyRow,
  type GenerationRow,
  RUN_KINDS,
} from "../../store/schema.ts";
import {
  brief,
  buildComparison,
  defaultPair,
  type RunInfo,
  type RunKind,
  type RunReader,
  variantOf,
} from "../../training/runs/run-compare.ts";
import { AdminSessions, SESSION_COOKIE } from "../admin-session.ts";
import { ApiError } from "../api-error.ts";
import type { Config } from "../config.ts";
import { describeZodError } from "../schemas.ts";
import { sendFile } from "../send-file.ts";

const ASSETS_DIR = join(import.meta.dirname, "../admin");
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve("uplot")), ".");

/** Files served as they are; nothing else under these prefixes is reachable. */
const ASSETS: Record<string, { path: string; type: string }> = {
  "assets/app.js": { path: join(ASSETS_DIR, "app.js"), type: "text/javascript; charset=utf-8" },
  "assets/app.css": { path: join(ASSETS_DIR, "app.css"), type: "text/css; charset=utf-8" },
  "vendor/uplot/uPlot.esm.js": {
    path: join(UPLOT_DIR, "uPlot.esm.js"),
    type: "text/javascript; charset=utf-8",
  },
  "vendor/uplot/uPlot.min.css": {
    path: join(UPLOT_DIR, "uPlot.min.css"),
    type: "text/css; charset=utf-8",
  },
};

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

export interface AdminPageDeps {
  db: Db;
  runtime: ModelRuntime;
  generations?: GenerationRunner | undefined;
  config: Config;
  runs: RunReader;
  sessions?: AdminSessions;
}

interface AdminEnv {
  Variables: { adminKey: ApiKeyRow };
}

const hostOf = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
};

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch] as string,
  );

function signInPage(message: string | null): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffusable admin: sign in</title>
<link rel="stylesheet" href="/admin/assets/app.css">
</head>
<body class="signin">
<main>
<h1>diffusable admin</h1>
${message ? `<p class="error" role="alert" id="signin-error">${escapeHtml(message)}</p>` : ""}
<form method="post" action="/admin/session" id="signin">
<label for="key">Admin API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required spellcheck="false">
<button type="submit">Sign in</button>
</form>
<p class="hint">Make a key with <code>npm run keys -- create --name me --role admin</code>.</p>
</main>
</body>
</html>
`;
}

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

const SamplesRequestSchema = z.strictObject({
  a: z.string().min(1).max(200),
  b: z.string().min(1).max(200),
  label: z.union([z.string().min(1).max(200), z.number().int().nonnegative()]),
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  steps: z.number().int().positive().max(1000).optional(),
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

export function adminPageRoutes(deps: AdminPageDeps) {
  const { db, runtime, generations, config, runs } = deps;
  const sessions = deps.sessions ?? new AdminSessions({ secret: config.adminSecret });
  const app = new Hono<AdminEnv>();

  const secure = (c: Context) =>
    new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";

  const adminOf = (c: Context) => sessions.adminKey(db, getCookie(c, SESSION_COOKIE));

  const wantsJson = (c: Context) =>
    (c.req.header("accept") ?? "").includes("application/json") &&
    !(c.req.header("accept") ?? "").includes("text/html");

  /** A cross-site POST (Origin of another host) is refused, on top of SameSite=Strict. */
  app.use(async (c, next) => {
    if (c.req.method === "POST") {
      const origin = c.req.header("origin");
      if (origin && origin !== "null" && hostOf(origin) !== new URL(c.req.url).host) {
        throw new ApiError("cross_origin", "cross-origin requests to /admin are refused", 403);
      }
    }
    await next();
    c.header("Cache-Control", "no-store");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    if ((c.res.headers.get("content-type") ?? "").startsWith("text/html")) {
      c.header("Content-Security-Policy", CSP);
      c.header("X-Frame-Options", "DENY");
    }
  });

  const page = async (c: Context) => {
    if (!adminOf(c)) return c.html(signInPage(null));
    return c.html(await readFile(join(ASSETS_DIR, "index.html"), "utf8"));
  };
  app.get("/", page);
  app.get("/index.html", page);

  app.post("/session", async (c) => {
    const type = c.req.header("content-type") ?? "";
    let secret: unknown;
    const json = type.includes("application/json");
    if (json) {
      secret = ((await c.req.json().catch(() => ({}))) as { key?: unknown }).key;
    } else {
      secret = (await c.req.parseBody().catch(() => ({}) as Record<string, unknown>)).key;
    }
    const fail = (status: 400 | 401 | 403, code: string, message: string) => {
      if (json) throw new ApiError(code, message, status);
      return c.html(signInPage(message), status);
    };
    if (typeof secret !== "string" || secret.trim() === "") {
      return fail(400, "invalid_field", "key: enter an admin API key");
    }
    const key = findKeyBySecret(db, secret.trim());
    if (!key) return fail(401, "invalid_api_key", "that API key is not valid (unknown or revoked)");
    if (key.role !== "admin") {
      return fail(403, "forbidden", "that is a user key; the admin page needs an admin key");
    }
    setCookie(c, SESSION_COOKIE, sessions.issue(key.id), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/admin",
      secure: secure(c),
      maxAge: Math.floor(sessions.ttlMs / 1000),
    });
    if (json)
      return c.json({ key: { id: key.id, name: key.name }, expiresInS: sessions.ttlMs / 1000 });
    return c.redirect("/admin", 303);
  });

  app.post("/session/delete", (c) => {
    sessions.revoke(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: "/admin", secure: secure(c) });
    if (wantsJson(c)) return c.json({ signedOut: true });
    return c.redirect("/admin", 303);
  });

  app.get("/:dir{assets|vendor}/*", async (c) => {
    const rel = c.req.path.replace(/^\/admin\//, "");
    const asset = ASSETS[rel];
    if (!asset) throw new ApiError("not_found", `no admin asset "${rel}"`, 404);
    const body = await readFile(asset.path);
    return c.body(body, 200, {
      "content-type": asset.type,
      etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`,
    });
  });

  // Everything below needs a session.
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
    const info = runtime.bundle(hit.name);
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
        const settings = resolveSettings(runtime.loaded(hit.name), {
          label: req.label,
          seed,
          ...(req.steps !== undefined ? { steps: req.steps } : {}),
        });
        return { side, runId, model: hit.name, settings, error: null };
      } catch (err) {
        if (isPipelineError(err, "bad_request")) {
          throw new ApiError("invalid_field", `${side} (${hit.name}): ${err.message}`, 400);
        }
        if (isPipelineError(err, "cannot_generate")) {
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
    const active = countGenerations(db, ACTIVE_STATUSES, key.id);
    if (active + runnable.length > config.maxActiveJobsPerKey) {
      throw new ApiError(
        "too_many_generations",
        `this key has ${active} queued or running generations; the limit is ${config.maxActiveJobsPerKey}`,
        429,
        { headers: { "Retry-After": "10" } },
      );
    }
    const samples = plans.map((p) => {
      if (p.error !== null || !("settings" in p) || !p.settings || !p.model) {
        return { side: p.side, run: p.runId, model: p.model, sample: null, error: p.error };
      }
      const s = p.settings;
      const options: GenerationOptions = {
        label: s.label,
        labelName: s.labelName,
        seed: s.seed,
        steps: s.steps,
        guidance: s.guidance,
        method: s.method,
        frames: s.frames,
        n: 1,
        format: "webm",
      };
      const row = insertGeneration(db, {
        id: newGenerationId(),
        keyId: key.id,
        model: p.model,
        options: options as unknown as Record<string, unknown>,
        steps: s.steps,
      });
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

  app.route("/api", api);
  return app;
}
