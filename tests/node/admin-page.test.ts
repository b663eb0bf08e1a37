// The admin page through app.request(): the cookie sign-in (admin keys only), the session's
// checks, the static files, the comparison JSON of the fixture runs (imported by the registry's
// importer) against values read straight from their events files, the experiment view of the grid
// fixture (arms over seeds), sample videos of both bundles, and the pair summary.

import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AdminSessions, SESSION_COOKIE } from "../../src/server/admin-session.ts";
import { revokeKey } from "../../src/store/api-keys.ts";
import { buildComparison, type Chart } from "../../src/training/runs/run-compare.ts";
import type { Grid } from "../../src/training/runs/run-grid.ts";
import { pairStats, summarize } from "../../src/training/runs/run-summary.ts";
import { type SeedSeries, seedStats } from "../../src/training/runs/seed-stats.ts";
import {
  adminModelsDir,
  fileRunReader,
  importFixtureRuns,
  importGridRuns,
  LATENT_CHANNELS_DIR,
  metricsOf,
  PICTURE_RUNS,
  readEvents,
} from "./admin-fixtures.ts";
import { GRID_RUNS_DIR, runId } from "./grid-fixture.ts";
import { ffmpegMake } from "./media.ts";
import { makeVideo, openTestApp, type TestApp, tempDir } from "./server-helpers.ts";

const form = (key: string) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({ key }).toString(),
});

/** The `name=value` of a Set-Cookie header, for a Cookie header. */
const cookieOf = (res: Response) => (res.headers.get("set-cookie") ?? "").split(";")[0] as string;

async function signIn(t: TestApp): Promise<string> {
  const res = await t.app.request("/admin/session", form(t.admin));
  assert.equal(res.status, 303);
  return cookieOf(res);
}

describe("admin page", () => {
  let t: TestApp;
  let parent: string;
  let cookie: string;

  before(async () => {
    parent = tempDir("admin-page");
    t = await openTestApp({ DIFFUSABLE_MODELS_DIR: adminModelsDir(parent) });
    importFixtureRuns(t.db);
    cookie = await signIn(t);
  });
  after(async () => {
    await t?.close();
    rmSync(parent, { recursive: true, force: true });
  });

  test("without a session, GET /admin is the sign-in form and the API is 401", async () => {
    const res = await t.app.request("/admin");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/html/);
    assert.equal(res.headers.get("set-cookie"), null);
    const html = await res.text();
    assert.match(html, /<form method="post" action="\/admin\/session"/);
    assert.match(html, /type="password"/);
    assert.match(
      html,
      /<link rel="icon" href="\/admin\/assets\/favicon\.svg" type="image\/svg\+xml">/,
    );
    assert.doesNotMatch(html, /app\.js/);
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const api = await t.app.request("/admin/api/runs");
    assert.equal(api.status, 401);
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, "not_signed_in");
  });

  test("an admin key signs in: 303 to /admin with an HttpOnly, SameSite=Strict cookie on /admin", async () => {
    const res = await t.app.request("/admin/session", form(t.admin));
    assert.equal(res.status, 303);
    assert.equal(res.headers.get("location"), "/admin");
    const set = res.headers.get("set-cookie") ?? "";
    assert.match(set, new RegExp(`^${SESSION_COOKIE}=`));
    assert.match(set, /; HttpOnly/i);
    assert.match(set, /; SameSite=Strict/i);
    assert.match(set, /; Path=\/admin(;|$)/);
    assert.match(set, /; Max-Age=\d+/);
    assert.ok(!set.includes(t.admin), "the cookie does not hold the API key");
    const page = await t.app.request("/admin", { headers: { cookie: cookieOf(res) } });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/admin\/assets\/app\.js"><\/script>/);
    assert.match(html, /id="charts"/);
    assert.match(
      html,
      /<link rel="icon" href="\/admin\/assets\/favicon\.svg" type="image\/svg\+xml">/,
    );
  });

  test("a user key cannot open /admin: 403 (form and JSON), no cookie", async () => {
    const res = await t.app.request("/admin/session", form(t.user));
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("set-cookie"), null);
    assert.match(await res.text(), /needs an admin key/);
    const json = await t.app.request("/admin/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: t.user }),
    });
    assert.equal(json.status, 403);
    assert.equal(json.headers.get("set-cookie"), null);
    assert.deepEqual(((await json.json()) as { error: { code: string } }).error.code, "forbidden");
    // Nor does a user key work as a bearer token on the page's API.
    const bearer = await t.app.request("/admin/api/runs", {
      headers: { authorization: `Bearer ${t.user}` },
    });
    assert.equal(bearer.status, 401);
    const bad = await t.app.request("/admin/session", form("dfs_not-a-key"));
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get("set-cookie"), null);
    const empty = await t.app.request("/admin/session", form(""));
    assert.equal(empty.status, 400);
  });

  test("a tampered or foreign cookie is no session", async () => {
    const value = cookie.slice(SESSION_COOKIE.length + 1);
    const [keyId, exp, nonce, mac] = value.split(".") as [string, string, string, string];
    const forged = [
      `${keyId}.${Number(exp) + 1000}.${nonce}.${mac}`,
      `${keyId}.${exp}.${nonce}.${mac.slice(0, -2)}AA`,
      new AdminSessions().issue(keyId),
      "garbage",
    ];
    for (const v of forged) {
      const res = await t.app.request("/admin/api/runs", {
        headers: { cookie: `${SESSION_COOKIE}=${v}` },
      });
      assert.equal(res.status, 401, v);
    }
  });

  test("signing out ends the session; revoking the key ends its sessions", async () => {
    const own = await signIn(t);
    assert.equal(
      (await t.app.request("/admin/api/runs", { headers: { cookie: own } })).status,
      200,
    );
    const out = await t.app.request("/admin/session/delete", {
      method: "POST",
      headers: { cookie: own },
    });
    assert.equal(out.status, 303);
    assert.match(out.headers.get("set-cookie") ?? "", /Max-Age=0/);
    assert.equal(
      (await t.app.request("/admin/api/runs", { headers: { cookie: own } })).status,
      401,
    );

    const { createKey } = await import("../../src/store/api-keys.ts");
    const other = createKey(t.db, "other-admin", "admin");
    const res = await t.app.request("/admin/session", form(other.secret));
    const session = cookieOf(res);
    assert.equal(
      (await t.app.request("/admin/api/runs", { headers: { cookie: session } })).status,
      200,
    );
    revokeKey(t.db, other.key.id);
    assert.equal(
      (await t.app.request("/admin/api/runs", { headers: { cookie: session } })).status,
      401,
    );
  });

  test("sessions expire", () => {
    let now = 1_000_000;
    const s = new AdminSessions({ secret: "x".repeat(32), ttlMs: 1000, now: () => now });
    const token = s.issue("key_1");
    assert.equal(s.verify(token), "key_1");
    now += 999;
    assert.equal(s.verify(token), "key_1");
    now += 1;
    assert.equal(s.verify(token), null);
    // The same secret verifies across instances (a configured DIFFUSABLE_ADMIN_SECRET).
    const again = new AdminSessions({ secret: "x".repeat(32), now: () => 0 });
    assert.equal(again.verify(token), "key_1");
  });

  test("cross-origin POSTs are refused", async () => {
    const res = await t.app.request("/admin/session", {
      ...form(t.admin),
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: "https://evil.example",
      },
    });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get("set-cookie"), null);
    const garbled = await t.app.request("/admin/session", {
      ...form(t.admin),
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "not a url" },
    });
    assert.equal(garbled.status, 403);
  });

  test("static files: the page's own and uPlot from node_modules, nothing else", async () => {
    for (const [path, type, least = 500] of [
      ["/admin/assets/app.js", /javascript/],
      ["/admin/assets/app.css", /text\/css/],
      ["/admin/assets/favicon.svg", /^image\/svg\+xml$/, 200],
      ["/admin/vendor/uplot/uPlot.esm.js", /javascript/],
      ["/admin/vendor/uplot/uPlot.min.css", /text\/css/],
    ] as [string, RegExp, number?][]) {
      const res = await t.app.request(path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get("content-type") ?? "", type);
      assert.ok((await res.arrayBuffer()).byteLength > least, path);
    }
    for (const path of [
      "/admin/vendor/uplot/package.json",
      "/admin/vendor/uplot/../../package.json",
      "/admin/assets/index.html",
      "/admin/assets/%2e%2e/admin-page.ts",
    ]) {
      assert.equal((await t.app.request(path)).status, 404, path);
    }
  });

  test("GET /admin/api/runs lists the imported runs with the default pair", async () => {
    const res = await t.app.request("/admin/api/runs", { headers: { cookie } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      runs: { id: string; kind: string; variant: string; final: { name: string } | null }[];
      default: { a: string; b: string };
    };
    assert.deepEqual(body.runs.map((r) => r.id).sort(), [
      "ae-small-baseline",
      "ae-small-se",
      "dit-small-baseline",
      "dit-small-se",
    ]);
    assert.deepEqual(body.default, { a: "dit-small-baseline", b: "dit-small-se" });
    const dit = body.runs.find((r) => r.id === "dit-small-se");
    assert.equal(dit?.variant, "se");
    assert.equal(dit?.final?.name, "fd_rand3d");
    const ae = body.runs.find((r) => r.id === "ae-small-baseline");
    assert.equal(ae?.final?.name, "psnr");
  });

  test("compare (default pair): the charts' series and points match the events files", async () => {
    const res = await t.app.request("/admin/api/compare", { headers: { cookie } });
    assert.equal(res.status, 200);
    const cmp = (await res.json()) as ReturnType<typeof buildComparison> & {
      bundles: Record<"a" | "b", { model: string; canGenerate: boolean; classes: string[] }>;
    };
    assert.equal(cmp.a.diffusion?.id, "dit-small-baseline");
    assert.equal(cmp.a.autoencoder?.id, "ae-small-baseline");
    assert.equal(cmp.b.diffusion?.id, "dit-small-se");
    assert.equal(cmp.b.autoencoder?.id, "ae-small-se");
    assert.deepEqual(cmp.warnings, []);
    const chart = (id: Chart["id"]) => cmp.charts.find((c) => c.id === id) as Chart;
    assert.deepEqual(
      cmp.charts.map((c) => c.id),
      ["fd", "class_score", "ae_loss", "ae_psnr", "spectrum"],
    );
    // Independently of the registry: the events files read here.
    const m = (run: string) => metricsOf(readEvents(run));
    const expect = (run: string, name: string) =>
      (m(run).get(name) ?? []).map((p) => [p.step, p.value]);
    assert.deepEqual(
      chart("fd").series.map((s) => s.points),
      [expect("dit-small-baseline", "eval/fd_rand3d"), expect("dit-small-se", "eval/fd_rand3d")],
    );
    assert.deepEqual(
      chart("fd").series.map((s) => s.points.length),
      [5, 5],
    );
    assert.deepEqual(
      chart("ae_psnr").series.map((s) => s.points),
      [expect("ae-small-baseline", "val/psnr"), expect("ae-small-se", "val/psnr")],
    );
    assert.deepEqual(
      chart("ae_loss").series.map((s) => s.points.length),
      [60, 60],
    );
    const spectrum = chart("spectrum");
    assert.equal(spectrum.y.log, true);
    assert.deepEqual(
      spectrum.series.map((s) => s.key),
      ["a_latent", "b_latent", "video"],
    );
    assert.deepEqual(
      spectrum.series.map((s) => s.points.length),
      [63, 63, 63],
    );
    const lastSpectrum = readEvents("ae-small-se")
      .filter((e) => e.type === "spectrum")
      .at(-1) as unknown as { latent_spectrum: number[] };
    // Each coefficient as its share of the AC energy (entries 1..63).
    const ac = lastSpectrum.latent_spectrum.slice(1).reduce((a, b) => a + b, 0);
    assert.deepEqual(
      spectrum.series[1]?.points.map((p) => p[1]),
      lastSpectrum.latent_spectrum.slice(1).map((v) => v / ac),
    );
    // The whole payload equals the comparison built from the files (the registry adds nothing).
    const fromFiles = buildComparison(fileRunReader(), "dit-small-baseline", "dit-small-se");
    assert.deepEqual(cmp.charts, fromFiles.charts);
    assert.deepEqual(cmp.table, fromFiles.table);
    assert.deepEqual(cmp.summary, fromFiles.summary);
    // The table and the summary.
    const row = (key: string) => cmp.table.rows.find((r) => r.key === key);
    assert.equal(row("latent_hf_share")?.b, 0.050960880487825204);
    assert.ok(row("psnr")?.a && row("ssim")?.b && row("psnr_drop_latent_lowpass")?.a);
    // One run per side: no interval, no conclusion; the raw finals; the first eval step at
    // which SE is at or below the baseline's final FD (step 300 of the SE run's evaluations).
    const fd = cmp.summary.fd?.arms;
    assert.deepEqual(fd?.baseline?.metrics.fd_rand3d?.final.values, [35.03794958811956]);
    assert.deepEqual(fd?.se?.metrics.fd_rand3d?.steps_to_reach, {
      target: 35.03794958811956,
      seeds: 1,
      reached: 1,
      mean: 300,
      sd: 0,
    });
    assert.equal(
      cmp.summary.sentences[0],
      "fd_rand3d (lower is better), se vs baseline: one seed per arm: no interval, no conclusion (final se 34.47; baseline 35.04)",
    );
    assert.equal(
      cmp.summary.sentences[1],
      "fd_rand3d: se reaches the baseline's final mean fd_rand3d (35.04) in 1 of 1 seeds, first at step 300.",
    );
    assert.doesNotMatch(
      cmp.summary.sentences.join(" "),
      /of the baseline's steps|: (SE|baseline) better/,
    );
    // The bundles that serve the runs.
    assert.equal(cmp.bundles.a.model, "fx-baseline");
    assert.equal(cmp.bundles.b.model, "fx-se");
    assert.equal(cmp.bundles.b.canGenerate, true);
    assert.deepEqual(cmp.bundles.a.classes, ["a", "b"]);
  });

  test("compare: explicit runs, an autoencoder pair, and errors", async () => {
    const get = (q: string) => t.app.request(`/admin/api/compare${q}`, { headers: { cookie } });
    const ae = await get("?a=ae-small-baseline&b=ae-small-se");
    assert.equal(ae.status, 200);
    const body = (await ae.json()) as { charts: Chart[]; summary: { fd: unknown } };
    assert.deepEqual(
      body.charts.map((c) => c.id),
      ["ae_loss", "ae_psnr", "spectrum"],
    );
    assert.equal(body.summary.fd, null);
    assert.equal(
      ((await (await get("?a=dit-small-baseline&b=dit-small-se")).json()) as { warnings: [] })
        .warnings.length,
      0,
    );
    const swapped = (await (await get("?a=dit-small-se&b=dit-small-baseline")).json()) as {
      warnings: string[];
    };
    assert.equal(swapped.warnings.length, 2);
    const missing = await get("?a=nope&b=dit-small-se");
    assert.equal(missing.status, 404);
    assert.equal(
      ((await missing.json()) as { error: { code: string } }).error.code,
      "run_not_found",
    );
    assert.equal((await get("?a=dit-small-se")).status, 400);
  });

  test("GET /admin/api/bundles: the loaded bundles, the baseline and SE ones by default", async () => {
    const res = await t.app.request("/admin/api/bundles", { headers: { cookie } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      bundles: {
        name: string;
        variant: string;
        canGenerate: boolean;
        classes: string[];
        runs: unknown;
      }[];
      default: { a: string; b: string } | null;
    };
    assert.deepEqual(
      body.bundles.map((b) => [b.name, b.variant, b.canGenerate, b.classes]),
      [
        ["fx-baseline", "baseline", true, ["a", "b"]],
        ["fx-se", "se", true, ["a", "b"]],
        ["tiny-fixture", "baseline", true, ["a", "b"]],
      ],
    );
    assert.deepEqual(body.bundles[1]?.runs, {
      autoencoder: "ae-small-se",
      diffusion: "dit-small-se",
    });
    assert.deepEqual(body.default, { a: "fx-baseline", b: "fx-se" });
    assert.equal((await t.app.request("/admin/api/bundles")).status, 401);
  });

  test("samples by bundle (models: {a, b}), whatever the runs; one way of naming sides", async () => {
    const post = (body: unknown) =>
      t.app.request("/admin/api/samples", {
        method: "POST",
        headers: { cookie, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const code = async (res: Response) =>
      ((await res.json()) as { error: { code: string } }).error.code;
    const both = await post({
      a: "dit-small-baseline",
      b: "dit-small-se",
      models: { a: "fx-se", b: "fx-se" },
      label: "a",
    });
    assert.equal(both.status, 400);
    assert.equal(await code(both), "invalid_field");
    const neither = await post({ label: "a" });
    assert.equal(neither.status, 400);
    const unknown = await post({ models: { a: "fx-baseline", b: "nope" }, label: "a" });
    assert.equal(unknown.status, 400);
    assert.match(
      ((await unknown.json()) as { error: { message: string } }).error.message,
      /models\.b: no loaded bundle "nope" \(loaded: fx-baseline, fx-se, tiny-fixture\)/,
    );
    const res = await post({ models: { a: "tiny-fixture", b: "fx-se" }, label: "a", seed: 3 });
    assert.equal(res.status, 202);
    const body = (await res.json()) as {
      samples: {
        side: string;
        run: string | null;
        model: string;
        sample: { id: string; seed: number };
      }[];
    };
    assert.deepEqual(
      body.samples.map((s) => [s.side, s.model, s.run, s.sample.seed]),
      [
        ["a", "tiny-fixture", null, 3],
        ["b", "fx-se", "dit-small-se", 3],
      ],
    );
    await t.runner.idle();
  });

  test("samples from an image or a clip (multipart): each side starts from it; a bad file is a 4xx before the 202", async () => {
    const dir = tempDir("admin-inputs");
    const image = ffmpegMake([
      "-f",
      "lavfi",
      "-i",
      "mandelbrot=size=48x40:end_pts=1",
      "-frames:v",
      "1",
      join(dir, "p.png"),
    ]);
    const clip = makeVideo(join(dir, "c.mp4"), { seconds: 9 / 8 });
    const post = (fields: Record<string, string>, file: [string, Uint8Array, string] | null) => {
      const form = new FormData();
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      if (file) form.append(file[0], new Blob([file[1]]), file[2]);
      return t.app.request("/admin/api/samples", {
        method: "POST",
        headers: { cookie },
        body: form,
      });
    };
    const fields = {
      "models.a": "tiny-fixture",
      "models.b": "fx-se",
      label: "a",
      seed: "2",
      steps: "1",
    };
    for (const [field, path, frames] of [
      ["image", image, "5"],
      ["video", clip, "4"],
    ] as const) {
      const res = await post({ ...fields, frames }, [field, readFileSync(path), field]);
      const body = (await res.json()) as { samples: { sample: { id: string } }[] };
      assert.equal(res.status, 202, JSON.stringify(body));
      await t.runner.idle();
      for (const s of body.samples) {
        const g = (await (
          await t.app.request(`/admin/api/samples/${s.sample.id}`, { headers: { cookie } })
        ).json()) as { status: string; error: unknown };
        assert.equal(g.status, "succeeded", `${field}: ${JSON.stringify(g.error)}`);
      }
    }
    const bad = await post(fields, ["image", new TextEncoder().encode("no picture"), "x.png"]);
    assert.equal(bad.status, 422);
    assert.match(
      ((await bad.json()) as { error: { message: string } }).error.message,
      /^image "x\.png": the file is not an image/,
    );
    const half = await post({ "models.a": "fx-se", label: "a" }, [
      "image",
      readFileSync(image),
      "p.png",
    ]);
    assert.equal(half.status, 400);
  });

  test("samples: one webm per bundle for the same label and seed, playable with ranges", async () => {
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      t.app.request("/admin/api/samples", {
        method: "POST",
        headers: { cookie, "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    assert.equal(
      (await post({ a: "dit-small-baseline", b: "dit-small-se", label: "nope" })).status,
      400,
    );
    const notJson = await t.app.request("/admin/api/samples", {
      method: "POST",
      headers: { cookie, "content-type": "text/plain" },
      body: "{}",
    });
    assert.equal(notJson.status, 415);
    const res = await post({ a: "dit-small-baseline", b: "dit-small-se", label: "b", seed: 7 });
    assert.equal(res.status, 202);
    const body = (await res.json()) as {
      seed: number;
      samples: { side: string; model: string; sample: { id: string } }[];
    };
    assert.equal(body.seed, 7);
    assert.deepEqual(
      body.samples.map((s) => [s.side, s.model]),
      [
        ["a", "fx-baseline"],
        ["b", "fx-se"],
      ],
    );
    for (const s of body.samples) {
      let g: { status: string; content: string | null; seed: number; label: string };
      const deadline = Date.now() + 120_000;
      for (;;) {
        g = (await (
          await t.app.request(`/admin/api/samples/${s.sample.id}`, { headers: { cookie } })
        ).json()) as typeof g;
        if (g.status !== "queued" && g.status !== "running") break;
        assert.ok(Date.now() < deadline, "sample still running");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(g.status, "succeeded");
      assert.equal(g.seed, 7);
      assert.equal(g.label, "b");
      const video = await t.app.request(g.content as string, { headers: { cookie } });
      assert.equal(video.status, 200);
      assert.equal(video.headers.get("content-type"), "video/webm");
      const bytes = Buffer.from(await video.arrayBuffer());
      assert.equal(bytes.subarray(0, 4).toString("hex"), "1a45dfa3"); // EBML magic
      const part = await t.app.request(g.content as string, {
        headers: { cookie, range: "bytes=4-11" },
      });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get("content-range"), `bytes 4-11/${bytes.length}`);
      assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(4, 12));
      const none = await t.app.request(g.content as string);
      assert.equal(none.status, 401);
    }
  });
});

describe("admin page: a bundle without a denoiser", () => {
  let t: TestApp;
  let parent: string;
  before(async () => {
    parent = tempDir("admin-page-nodenoiser");
    t = await openTestApp({
      DIFFUSABLE_MODELS_DIR: adminModelsDir(parent, { seDenoiser: false }),
    });
    importFixtureRuns(t.db);
  });
  after(async () => {
    await t?.close();
    rmSync(parent, { recursive: true, force: true });
  });

  test("compare says it cannot generate; samples make the other side and name the reason", async () => {
    const cookie = await signIn(t);
    const cmp = (await (
      await t.app.request("/admin/api/compare", { headers: { cookie } })
    ).json()) as { bundles: Record<"a" | "b", { canGenerate: boolean; reason: string | null }> };
    assert.equal(cmp.bundles.a.canGenerate, true);
    assert.equal(cmp.bundles.b.canGenerate, false);
    assert.match(cmp.bundles.b.reason ?? "", /cannot_generate/);
    const bundles = (await (
      await t.app.request("/admin/api/bundles", { headers: { cookie } })
    ).json()) as { bundles: { name: string; canGenerate: boolean }[]; default: unknown };
    assert.equal(bundles.bundles.find((b) => b.name === "fx-se")?.canGenerate, false);
    assert.deepEqual(
      bundles.default,
      { a: "fx-baseline", b: "tiny-fixture" },
      "no SE bundle generates",
    );
    const res = await t.app.request("/admin/api/samples", {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ a: "dit-small-baseline", b: "dit-small-se", label: "a", seed: 1 }),
    });
    assert.equal(res.status, 202);
    const body = (await res.json()) as {
      samples: { side: string; sample: unknown; error: { code: string } | null }[];
    };
    assert.ok(body.samples[0]?.sample);
    assert.equal(body.samples[1]?.sample, null);
    assert.equal(body.samples[1]?.error?.code, "cannot_generate");
    const only = await t.app.request("/admin/api/samples", {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ a: "dit-small-se", b: "dit-small-se", label: "a" }),
    });
    assert.equal(only.status, 422);
    assert.equal(
      ((await only.json()) as { error: { code: string } }).error.code,
      "cannot_generate",
    );
    await t.runner.idle();
  });
});

describe("admin page: the experiment view (arms over seeds)", () => {
  let t: TestApp;
  let parent: string;
  let cookie: string;
  before(async () => {
    parent = tempDir("admin-page-grid");
    t = await openTestApp({ DIFFUSABLE_MODELS_DIR: adminModelsDir(parent) });
    importFixtureRuns(t.db, { pictures: join(parent, "runs") });
    importGridRuns(t.db);
    cookie = await signIn(t);
  });
  after(async () => {
    await t?.close();
    rmSync(parent, { recursive: true, force: true });
  });
  const get = (q = "") => t.app.request(`/admin/api/grid${q}`, { headers: { cookie } });

  test("GET /admin/api/grid: the latest experiment, its stats from the events files", async () => {
    const res = await get();
    assert.equal(res.status, 200);
    const grid = (await res.json()) as Grid;
    assert.equal(grid.group?.key, "experiment:grid-fixture");
    assert.deepEqual(
      grid.groups.map((g) => [g.key, g.arms]),
      [
        ["experiment:grid-fixture", { baseline: 3, se: 3, "se-spatial": 3 }],
        ["model:small:1200", { baseline: 1, se: 1 }],
      ],
    );
    // The same statistics from the events files read here (no registry).
    const arms: Record<string, SeedSeries[]> = {};
    for (const arm of ["baseline", "se", "se-spatial"]) {
      arms[arm] = [0, 1, 2].map((seed) => {
        const id = runId(arm, seed);
        const m = metricsOf(readEvents(id, GRID_RUNS_DIR));
        const metrics: SeedSeries["metrics"] = {};
        for (const name of ["fd_cls3d", "fd_rand3d", "lfd", "class_score", "val_loss"]) {
          metrics[name] = m.get(`eval/${name}`) ?? [];
        }
        return { seed, runId: id, metrics };
      });
    }
    assert.deepEqual(grid.stats, JSON.parse(JSON.stringify(seedStats(arms))));
    // Arms: three, with their autoencoders (se-spatial's from the shipped logs).
    assert.deepEqual(
      grid.arms.map((a) => [a.arm, a.seeds, a.autoencoder?.id]),
      [
        ["baseline", [0, 1, 2], "ae-small-baseline"],
        ["se", [0, 1, 2], "ae-small-se"],
        ["se-spatial", [0, 1, 2], "ae-small-se-spatial"],
      ],
    );
    assert.deepEqual(grid.ae.table.columns, [
      "baseline · ae-small-baseline",
      "se · ae-small-se",
      "se-spatial · ae-small-se-spatial",
    ]);
    const psnr = grid.ae.table.rows.find((r) => r.key === "psnr");
    assert.equal(psnr?.values.length, 3);
    assert.ok(psnr?.values.every((v) => typeof v === "number" && v > 10));
    const spectrum = grid.ae.charts.find((c) => c.id === "spectrum");
    assert.deepEqual(
      spectrum?.series.map((s) => [s.key, s.points.length]),
      [
        ["baseline_latent", 63],
        ["se_latent", 63],
        ["se-spatial_latent", 63],
        ["video", 63],
      ],
    );
    assert.deepEqual(
      grid.ae.charts.map((c) => [c.id, c.series.length]),
      [
        ["ae_loss", 3],
        ["ae_psnr", 3],
        ["spectrum", 4],
      ],
    );
    assert.equal(grid.numClasses, 17);
    assert.deepEqual(grid.warnings, []);
  });

  test("the latent-channel pictures: served from a run folder that has one, else null", async () => {
    const grid = (await (await get()).json()) as Grid;
    assert.deepEqual(grid.ae.pictures, [
      {
        arm: "baseline",
        runId: "ae-small-baseline",
        latentChannels: "/admin/api/runs/ae-small-baseline/latent-channels.png",
      },
      {
        arm: "se",
        runId: "ae-small-se",
        latentChannels: "/admin/api/runs/ae-small-se/latent-channels.png",
      },
      { arm: "se-spatial", runId: "ae-small-se-spatial", latentChannels: null },
    ]);
    for (const id of PICTURE_RUNS) {
      const res = await t.app.request(`/admin/api/runs/${id}/latent-channels.png`, {
        headers: { cookie },
      });
      assert.equal(res.status, 200, id);
      assert.equal(res.headers.get("content-type"), "image/png");
      assert.deepEqual(
        Buffer.from(await res.arrayBuffer()),
        readFileSync(join(LATENT_CHANNELS_DIR, `${id}.png`)),
      );
    }
    const none = await t.app.request("/admin/api/runs/ae-small-se-spatial/latent-channels.png", {
      headers: { cookie },
    });
    assert.equal(none.status, 404);
    assert.equal(
      ((await none.json()) as { error: { code: string } }).error.code,
      "picture_not_found",
    );
    const unknown = await t.app.request("/admin/api/runs/nope/latent-channels.png", {
      headers: { cookie },
    });
    assert.equal(unknown.status, 404);
    const anonymous = await t.app.request("/admin/api/runs/ae-small-se/latent-channels.png");
    assert.equal(anonymous.status, 401);
  });

  test("the summary: one line per metric, paired by seed; the relative charts", async () => {
    const grid = (await (await get()).json()) as Grid;
    assert.deepEqual(
      grid.summary.metrics.map((l) => [l.metric, l.head]),
      ["fd_cls3d", "fd_rand3d", "lfd", "class_score", "val_loss"].map((m) => [
        m,
        `${m} (${m === "class_score" ? "higher" : "lower"} is better), paired by seed (n=3)`,
      ]),
    );
    assert.deepEqual(
      grid.charts
        .filter((c) => c.kind === "relative")
        .map((c) => [c.id, c.series.map((s) => s.arm)]),
      ["fd_cls3d", "fd_rand3d", "lfd", "class_score", "val_loss"].map((m) => [
        `${m}-relative`,
        ["se", "se-spatial"],
      ]),
    );
  });

  test("a group by key: the old single-seed runs; an unknown group 404, a bad query 400", async () => {
    const small = (await (await get("?group=model:small:1200")).json()) as Grid;
    assert.deepEqual(
      small.arms.filter((a) => a.runs.length).map((a) => a.runs),
      [["dit-small-baseline"], ["dit-small-se"]],
    );
    assert.deepEqual(
      small.summary.lines.map((l) => l.text),
      [
        "fd_rand3d (lower is better), se vs baseline: one seed per arm: no interval, no conclusion (final se 34.47; baseline 35.04)",
        "class_score (higher is better), se vs baseline: one seed per arm: no interval, no conclusion (final se 0.0625; baseline 0.07813)",
      ],
    );
    assert.equal(small.numClasses, 13);
    const missing = await get("?group=nope");
    assert.equal(missing.status, 404);
    assert.equal(
      ((await missing.json()) as { error: { code: string } }).error.code,
      "group_not_found",
    );
    const bad = await get("?experiment=x");
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, "invalid_field");
    assert.equal((await t.app.request("/admin/api/grid")).status, 401);
  });
});

describe("pair summary", () => {
  const s = (pairs: [number, number][]) => pairs.map(([step, value]) => ({ step, value }));

  test("pairStats: one seed per arm, the first eval step at the baseline's final value", () => {
    const r = pairStats(
      "fd",
      "lower",
      s([
        [0, 40],
        [1000, 20],
      ]),
      s([
        [0, 40],
        [250, 20],
        [1000, 15],
      ]),
    );
    assert.deepEqual(r.arms.se?.metrics.fd?.steps_to_reach, {
      target: 20,
      seeds: 1,
      reached: 1,
      mean: 250,
      sd: 0,
    });
    assert.ok(Math.abs((r.comparisons[0]?.rel as number) + 0.25) < 1e-15);
    assert.deepEqual(
      r.comparisons.map((c) => [c.lo, c.hi, c.conclusion]),
      [[null, null, "one seed per arm: no interval, no conclusion"]],
    );
  });

  test("summarize: never a win from one seed, the reach line only when reached", () => {
    const out = summarize({
      fd: {
        metric: "fd_rand3d",
        baseline: s([
          [0, 40],
          [100, 30],
        ]),
        se: s([
          [0, 40],
          [100, 33],
        ]),
      },
      psnr: {
        baseline: s([
          [0, 10],
          [200, 20],
        ]),
        se: s([
          [0, 10],
          [100, 20],
          [200, 22],
        ]),
      },
    });
    assert.deepEqual(out.sentences, [
      "fd_rand3d (lower is better), se vs baseline: one seed per arm: no interval, no conclusion (final se 33; baseline 30)",
      "fd_rand3d: se does not reach the baseline's final mean fd_rand3d (30) within 100 steps (0 of 1 seeds).",
      "psnr (higher is better), se vs baseline: one seed per arm: no interval, no conclusion (final se 22; baseline 20)",
      "psnr: se reaches the baseline's final mean psnr (20) in 1 of 1 seeds, first at step 100.",
    ]);
    assert.deepEqual(summarize({ fd: null, psnr: null }).sentences, []);
  });
});
