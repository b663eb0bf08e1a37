// The admin page in a real browser: playwright-core drives Debian's chromium (headless; never a
// downloaded browser) against real servers on random ports with temp SQLite databases.
// 1. The fixtures: the recorded runs (their two autoencoders from copies holding the fixture
//    latent-channels.png), the 3 arms × 3 seeds grid fixture and the shipped se-spatial
//    autoencoder, two fixture bundles that name the recorded runs. Signs in through the form,
//    checks the experiment view (one summary line per metric, paired by seed, word for word; per
//    metric the arms relative to the baseline and the arms' means, a band and a line per arm;
//    tick labels without spurious decimals, axis titles clear of them; every legend entry), the
//    latent-channel pictures (loaded where the PNG exists, a sentence where not), the favicon,
//    every uPlot chart's series and point counts as drawn, generates and plays the sample videos,
//    saves screenshots (desktop and 375px phone) under tests/.fixtures/, and signs out.
// 2. The first start: the shipped models/ and docs/results/runs as `npm start` has them; the
//    Samples section picks the loaded baseline and SE bundles, lists their labels, and both
//    generate and play.
// Skipped only when /usr/bin/chromium is missing.

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { type RunningServer, startServer } from "../../src/server/serve.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import type { Grid } from "../../src/training/runs/run-grid.ts";
import {
  adminModelsDir,
  importFixtureRuns,
  importGridRuns,
  LATENT_CHANNELS_DIR,
  metricsOf,
  readEvents,
  SE_SPATIAL_AE_DIR,
} from "./admin-fixtures.ts";
import { REPO_ROOT } from "./python.ts";
import { tempDir, testConfig } from "./server-helpers.ts";

const CHROMIUM = "/usr/bin/chromium";

// The browser side's globals, typed as far as these checks use them (tsconfig has no DOM lib);
// the casts are erased, so the functions run in the page as written.
interface Video {
  readyState: number;
  error: unknown;
  currentTime: number;
  paused: boolean;
  videoWidth: number;
  videoHeight: number;
}
interface Fig {
  dataset: Record<string, string | undefined>;
  querySelectorAll(sel: string): ArrayLike<{ textContent: string | null }>;
  querySelector(
    sel: string,
  ): { textContent: string | null; getAttribute(name: string): string | null } | null;
}
interface SvgNode {
  textContent: string | null;
  getAttribute(name: string): string | null;
  getBBox(): { height: number; width: number };
}
interface SvgFig {
  dataset: Record<string, string | undefined>;
  querySelectorAll(sel: string): ArrayLike<SvgNode>;
}
interface Rect {
  left: number;
  right: number;
  top: number;
  width: number;
  height: number;
}
interface Img {
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
}
interface Ctx {
  font: string;
  measureText(t: string): { width: number };
}
interface Win {
  document: {
    cookie: string;
    querySelector(sel: string): unknown;
    documentElement: { scrollWidth: number };
  };
  innerWidth: number;
}
const SHOTS = join(REPO_ROOT, "tests/.fixtures");

/** The se-spatial autoencoder's points per metric, read from its events file. */
const spatial = metricsOf(readEvents("ae-small-se-spatial", join(SE_SPATIAL_AE_DIR, "..")));
const spatialPoints = (name: string) => (spatial.get(name) ?? []).filter((p) => p.value > 0).length;

/** Each uPlot chart, in page order (the arms' autoencoders, then the pair's diffusion charts):
 * its series labels and the points uPlot holds per series. */
const EXPECTED: Record<string, { labels: string[]; points: number[] }> = {
  ae_loss: {
    labels: [
      "baseline · ae-small-baseline",
      "se · ae-small-se",
      "se-spatial · ae-small-se-spatial",
    ],
    points: [60, 60, spatialPoints("train/loss_rec")],
  },
  ae_psnr: {
    labels: [
      "baseline · ae-small-baseline",
      "se · ae-small-se",
      "se-spatial · ae-small-se-spatial",
    ],
    points: [6, 6, spatialPoints("val/psnr")],
  },
  spectrum: {
    labels: [
      "latent · baseline · ae-small-baseline",
      "latent · se · ae-small-se",
      "latent · se-spatial · ae-small-se-spatial",
      "video",
    ],
    points: [63, 63, 63, 63],
  },
  fd: { labels: ["baseline · dit-small-baseline", "se · dit-small-se"], points: [5, 5] },
  class_score: { labels: ["baseline · dit-small-baseline", "se · dit-small-se"], points: [5, 5] },
};

const ARMS = ["baseline", "se", "se-spatial"];
/** The band charts of the experiment view, in page order. */
const BAND_CHARTS = ["fd_cls3d", "fd_rand3d", "lfd", "class_score", "val_loss"];
/** The summary's line of a detectable win (fd_rand3d) and of a tie (fd_cls3d), as
 * diffusable.experiments.seed_stats words them for the grid fixture. */
/** The summary's line of fd_rand3d, paired by seed (as run-stats.test.ts derives it by hand). */
const FD_RAND3D_LINE =
  "fd_rand3d (lower is better), paired by seed (n=3): se vs baseline: se better, -19.6% [-21.8%, -17.3%]; " +
  "se vs se-spatial: se better, -11.3% [-14.3%, -8.3%]; se-spatial vs baseline: se-spatial better, " +
  "-9.3% [-11.0%, -7.6%]. Steps to reach the baseline's final mean (10.03): se in 3 of 3 seeds, " +
  "first at step 233 ± 58; se-spatial in 3 of 3 seeds, first at step 267 ± 58.";
/** Tick labels with more decimals than the axis needs ("80.000" on a step of 20): on a linear
 * axis no label has more decimals than the tick step ("0.75", "1.00", "1.25" on 0.25; "80" on
 * 20); on a log axis no label is "0" or ends in a zero decimal. */
function spuriousTicks(labels: readonly (string | null)[], log = false): string[] {
  const texts = labels.map((t) => t ?? "");
  if (log) return texts.filter((t) => t === "0" || /\.\d*0$/.test(t));
  const values = [...new Set(texts.map(Number))].sort((x, y) => x - y);
  const step = Math.min(...values.slice(1).map((v, i) => v - (values[i] as number)));
  let need = 0;
  while (need < 8 && Math.abs(step * 10 ** need - Math.round(step * 10 ** need)) > 1e-6) need++;
  return texts.filter((t) => (t.split(".")[1] ?? "").length > need);
}

/** Width and height from a PNG's IHDR. */
function pngSize(file: string): { w: number; h: number } {
  const b = readFileSync(file);
  return { w: b.readUInt32BE(16), h: b.readUInt32BE(20) };
}
const WIN = "fd_rand3d (lower is better), se vs baseline: se lower by 19.6% [13.6%, 25.2%]";
const TIE =
  "fd_cls3d (lower is better), se vs baseline: no difference detectable at this budget (rel -0.0% [-18.5%, 22.7%])";

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)`;

const launchChromium = () =>
  chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
  });

/** The sign-in form, as a person uses it. */
async function signInAt(page: Page, url: string, key: string) {
  await page.goto(`${url}/admin`);
  await page.fill("#key", key);
  await Promise.all([page.waitForLoadState("load"), page.click("#signin button[type=submit]")]);
}

describe("admin page in chromium", { skip }, () => {
  let parent: string;
  let server: RunningServer;
  let browser: Browser;
  let admin: string;
  let user: string;
  let dataDir: string;

  before(async () => {
    parent = tempDir("admin-browser");
    const config = testConfig(join(parent, "data"), {
      DIFFUSABLE_MODELS_DIR: adminModelsDir(parent),
      DIFFUSABLE_RUNS_IMPORT_DIR: "",
    });
    dataDir = config.dataDir;
    const db = openDb(config.dbFile);
    try {
      admin = createKey(db, "admin", "admin").secret;
      user = createKey(db, "user", "user").secret;
      importFixtureRuns(db, { pictures: join(parent, "runs") });
      importGridRuns(db);
    } finally {
      closeDb(db);
    }
    server = await startServer(config, () => {});
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  const signIn = (page: Page, key: string) => signInAt(page, server.url, key);

  test("a user key is refused by the form and gets no cookie", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await signIn(page, user);
      assert.match((await page.textContent("#signin-error")) ?? "", /needs an admin key/);
      assert.deepEqual(await context.cookies(), []);
    } finally {
      await context.close();
    }
  });

  test("sign in, compare the fixture runs, play the samples, screenshot, sign out", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    try {
      const page = await context.newPage();
      page.on("pageerror", (err) => errors.push(err.message));
      page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(msg.text());
      });
      await signIn(page, admin);
      assert.equal(new URL(page.url()).pathname, "/admin");
      // The recorded pair, which the fixture bundles serve (the grid runs are newer).
      await page.goto(`${server.url}/admin?a=dit-small-baseline&b=dit-small-se`);
      const cookies = await context.cookies();
      assert.equal(cookies.length, 1);
      assert.equal(cookies[0]?.httpOnly, true);
      assert.equal(cookies[0]?.sameSite, "Strict");
      assert.equal(cookies[0]?.path, "/admin");
      assert.equal(
        await page.evaluate(() => (globalThis as unknown as Win).document.cookie),
        "",
        "HttpOnly: not readable",
      );

      await page.waitForSelector("body[data-ready='1']", { timeout: 30_000 });

      // The experiment view: per metric a chart of the arms relative to the baseline, then one of
      // each arm's mean over seeds; a band and a line per arm.
      const bands = await page.$$eval("figure.band-chart", (figs) =>
        figs.map((el) => {
          const f = el as unknown as SvgFig;
          // No named helper functions here: tsx would wrap them in __name(), unknown in the page.
          const [bandPaths, meanPaths] = ["path[data-kind='band']", "path[data-kind='mean']"].map(
            (sel) =>
              Array.from(f.querySelectorAll(sel)).map((p) => ({
                arm: p.getAttribute("data-arm"),
                points: Number(p.getAttribute("data-points")),
                height: p.getBBox().height,
                width: p.getBBox().width,
                fill: p.getAttribute("fill"),
                stroke: p.getAttribute("stroke"),
                dash: p.getAttribute("stroke-dasharray"),
              })),
          );
          return {
            id: f.dataset.chart as string,
            kind: f.dataset.kind as string,
            band: f.dataset.band,
            bands: bandPaths ?? [],
            means: meanPaths ?? [],
            chance: Array.from(f.querySelectorAll("line[data-kind='chance']")).map((l) =>
              Number(l.getAttribute("data-value")),
            ),
            reference: Array.from(f.querySelectorAll("line[data-kind='reference']")).map((l) =>
              Number(l.getAttribute("data-value")),
            ),
            ends: Array.from(f.querySelectorAll("text.end-label")).map((t) => [
              t.getAttribute("data-arm"),
              t.textContent,
            ]),
            legend: Array.from(f.querySelectorAll(".legend li")).map((l) => l.textContent),
          };
        }),
      );
      assert.deepEqual(
        bands.map((b) => [b.id, b.kind]),
        BAND_CHARTS.flatMap((m) => [
          [`${m}-relative`, "relative"],
          [m, "absolute"],
        ]),
      );
      for (const b of bands) {
        const arms = b.kind === "relative" ? ["se", "se-spatial"] : ARMS;
        assert.equal(
          b.band,
          b.kind === "relative" ? "95% interval, paired by seed" : "mean ± sd over seeds",
          b.id,
        );
        assert.deepEqual(
          b.bands.map((p) => [p.arm, p.points]),
          arms.map((arm) => [arm, 4]),
          `${b.id}: a band per arm over the 4 eval steps`,
        );
        assert.deepEqual(
          b.means.map((p) => [p.arm, p.points]),
          arms.map((arm) => [arm, 4]),
          `${b.id}: a line per arm`,
        );
        for (const p of b.bands)
          assert.ok(p.height > 1 && p.width > 100, `${b.id} ${p.arm} band drawn`);
        assert.equal(new Set(b.bands.map((p) => p.fill)).size, arms.length, `${b.id}: colours`);
        assert.deepEqual(
          b.bands.map((p) => p.fill),
          b.means.map((p) => p.stroke),
          `${b.id}: band and line of an arm share its colour`,
        );
        // Lines on top of each other still show: each arm has its own dash.
        assert.equal(new Set(b.means.map((p) => p.dash)).size, arms.length, `${b.id}: dashes`);
        if (b.kind === "relative") {
          assert.deepEqual(b.legend.slice(0, 2), [
            "se vs baseline (3 paired seeds)",
            "se-spatial vs baseline (3 paired seeds)",
          ]);
          assert.deepEqual(b.reference, [0], `${b.id}: the baseline's zero line`);
          assert.deepEqual(b.chance, []);
        } else {
          assert.deepEqual(b.legend.slice(0, 3), [
            "baseline (3 seeds)",
            "se (3 seeds)",
            "se-spatial (3 seeds)",
          ]);
          assert.ok(b.legend.includes("line: mean; band: mean ± sd over seeds"), b.id);
          assert.deepEqual(b.chance, b.id === "class_score" ? [1 / 17] : [], `${b.id} chance line`);
          assert.deepEqual(b.reference, []);
        }
      }
      // The relative chart ends at the figures of the summary line.
      assert.deepEqual([...(bands.find((b) => b.id === "fd_rand3d-relative")?.ends ?? [])].sort(), [
        ["se", "-19.6%"],
        ["se-spatial", "-9.3%"],
      ]);

      // Tick labels without spurious decimals, axis titles clear of the tick labels, text at
      // its size (the SVG is drawn at the width it is shown at).
      const axes = await page.$$eval(
        "figure.band-chart svg.band-plot, figure.trade-off svg.band-plot",
        (svgs) =>
          svgs.map((s) => {
            type Box = { getBoundingClientRect(): Rect; textContent: string | null };
            const f = s as unknown as { querySelectorAll(sel: string): ArrayLike<Box> };
            const title = (
              f.querySelectorAll("text[data-kind='y-title']")[0] as Box
            ).getBoundingClientRect();
            const yTicks = Array.from(f.querySelectorAll("text[data-kind='y-tick']")).map((t) => ({
              text: t.textContent,
              rect: t.getBoundingClientRect(),
            }));
            return {
              yTicks: yTicks.map((t) => t.text),
              xTicks: Array.from(f.querySelectorAll("text[data-kind='x-tick']")).map(
                (t) => t.textContent,
              ),
              titleRight: title.right,
              tickLeft: Math.min(...yTicks.map((t) => t.rect.left)),
              tickHeight: Math.min(...yTicks.map((t) => t.rect.height)),
            };
          }),
      );
      assert.deepEqual(
        await textsPastEdge(
          page,
          "figure.band-chart svg.band-plot, figure.trade-off svg.band-plot",
        ),
        [],
        "no text runs past its plot's edge",
      );
      for (const a of axes) {
        assert.deepEqual(spuriousTicks(a.yTicks), [], `y ticks ${a.yTicks}`);
        assert.deepEqual(spuriousTicks(a.xTicks), [], `x ticks ${a.xTicks}`);
        assert.ok(
          a.titleRight <= a.tickLeft,
          `y title ends at ${a.titleRight}, ticks at ${a.tickLeft}`,
        );
        assert.ok(a.tickHeight >= 10, `tick text ${a.tickHeight}px high`);
      }

      // The summary: one line per metric, paired by seed, word for word the server's line.
      const grid = (await page.evaluate(async () =>
        (await fetch("/admin/api/grid")).json(),
      )) as Grid;
      const lines = await page.$$eval("#grid-summary li[data-metric]", (els) =>
        els.map((e) => ({
          metric: (e as unknown as Fig).dataset.metric,
          text: e.textContent,
          verdicts: Array.from((e as unknown as Fig).querySelectorAll(".part")).map(
            (p) => (p as unknown as Fig).dataset.verdict,
          ),
        })),
      );
      assert.deepEqual(
        lines.map((l) => [l.metric, l.text]),
        grid.summary.metrics.map((m) => [m.metric, m.text]),
      );
      assert.deepEqual(
        lines.map((l) => l.metric),
        BAND_CHARTS,
        "one line per metric",
      );
      assert.equal(lines.find((l) => l.metric === "fd_rand3d")?.text, FD_RAND3D_LINE);
      assert.deepEqual(lines.find((l) => l.metric === "fd_rand3d")?.verdicts, [
        "better",
        "better",
        "better",
      ]);
      // Every comparison, unpaired and paired, and the steps to reach: in the details.
      const all = await page.$$eval("#grid-all li[data-metric]", (els) =>
        els.map((e) => {
          const d = (e as unknown as Fig).dataset;
          return { key: `${d.metric} ${d.a} ${d.b}`, text: e.textContent };
        }),
      );
      assert.equal(all.length, 15, "5 metrics × 3 comparisons");
      assert.equal(new Set(all.map((l) => l.key)).size, 15, "never two lines for one comparison");
      assert.equal(all.find((l) => l.key === "fd_rand3d se baseline")?.text, WIN);
      assert.equal(all.find((l) => l.key === "fd_cls3d se baseline")?.text, TIE);
      // The trade-off: one marker per point of the server's list, at its PSNR and final fd_cls3d.
      const drawn = await page.$$eval("#trade-off g[data-kind='point']", (gs) =>
        gs.map((g) => {
          const d = (g as unknown as Fig).dataset;
          return [d.arm, d.channels, Number(d.psnr), d.fd === "" ? null : Number(d.fd)];
        }),
      );
      assert.ok(
        grid.tradeOff.points.some((p) => p.fd !== null),
        "an arm with its denoisers' fd_cls3d",
      );
      assert.deepEqual(
        drawn,
        grid.tradeOff.points.map((p) => [
          p.arm,
          String(p.channels ?? ""),
          p.psnr,
          p.fd?.mean ?? null,
        ]),
      );
      // ... and a dotted line at each latent grid's linear code, where the points have one
      const linears = await page.$$eval("#trade-off line[data-kind='linear']", (ls) =>
        ls.map((l) => Number((l as unknown as SvgNode).getAttribute("data-psnr"))),
      );
      assert.deepEqual(linears, [
        ...new Set(grid.tradeOff.points.flatMap((p) => (p.linear === null ? [] : [p.linear]))),
      ]);
      const details = (await page.textContent("#grid-all")) ?? "";
      assert.match(
        details,
        /fd_rand3d: se reaches the baseline's final mean fd_rand3d \(10\.03\) in 3 of 3 seeds, first at step 233 ± 58 \(sd\)\./,
      );
      assert.ok(
        details.includes(
          "fd_rand3d (lower is better), se-spatial vs baseline, paired by seed (n=3): se-spatial lower by 9.3% [7.6%, 11.0%]",
        ),
        details,
      );
      // se-spatial: a column of the autoencoder table, rows of the steps-to-reach table.
      assert.deepEqual(
        await page.$$eval("#ae-table thead th", (els) => els.map((e) => e.textContent)),
        [
          "metric",
          "baseline · ae-small-baseline",
          "se · ae-small-se",
          "se-spatial · ae-small-se-spatial",
        ],
      );
      assert.equal(await page.locator("#ae-table tbody tr:first-child td").count(), 3);
      assert.equal(await page.locator("#reach-table tbody tr[data-arm='se-spatial']").count(), 5); // one row per metric
      assert.match(
        (await page.textContent("#grid-arms")) ?? "",
        /se-spatial: 3 seeds \(AE ae-small-se-spatial\)/,
      );

      // The latent channels of the same clip: a picture per autoencoder whose folder has one,
      // loaded at its size; a sentence where there is none.
      const pictures = await page.$$eval("#latents figure", (figs) =>
        figs.map((el) => {
          const f = el as unknown as Fig;
          const img = f.querySelector("img") as unknown as Img | null;
          return {
            arm: f.dataset.arm,
            run: f.dataset.run,
            img: img ? { complete: img.complete, w: img.naturalWidth, h: img.naturalHeight } : null,
            missing: f.querySelector(".missing")?.textContent ?? null,
          };
        }),
      );
      const size = pngSize(join(LATENT_CHANNELS_DIR, "ae-small-se.png"));
      assert.deepEqual(pictures, [
        {
          arm: "baseline",
          run: "ae-small-baseline",
          img: { complete: true, ...size },
          missing: null,
        },
        { arm: "se", run: "ae-small-se", img: { complete: true, ...size }, missing: null },
        {
          arm: "se-spatial",
          run: "ae-small-se-spatial",
          img: null,
          missing:
            "No picture yet: ae-small-se-spatial's folder has no latent-channels.png (the autoencoder evaluation writes it).",
        },
      ]);
      // Side by side on a desktop: baseline's and SE's pictures on one row.
      const [pa, pb] = await page.$$eval("#latents img", (imgs) =>
        imgs.map(
          (i) => (i as unknown as { getBoundingClientRect(): Rect }).getBoundingClientRect().top,
        ),
      );
      assert.equal(pa, pb, "baseline and SE side by side");

      // The favicon: a link the CSP allows, served.
      const icon = await page.evaluate(async () => {
        const href = (
          (globalThis as unknown as Win).document.querySelector("link[rel=icon]") as {
            href: string;
          }
        ).href;
        const res = await fetch(href);
        return { href, status: res.status, type: res.headers.get("content-type") };
      });
      assert.equal(icon.status, 200, icon.href);
      assert.equal(icon.type, "image/svg+xml");

      // Every uPlot chart, as uPlot drew it (read back from the instance into data attributes).
      const charts = await page.$$eval("figure.chart:not(.band-chart):not(.trade-off)", (figs) =>
        figs.map((el) => {
          const f = el as unknown as Fig;
          return {
            id: f.dataset.chart as string,
            series: Number(f.dataset.series),
            labels: JSON.parse(f.dataset.labels ?? "[]") as string[],
            points: JSON.parse(f.dataset.points ?? "[]") as number[],
            canvas: f.querySelectorAll("canvas").length,
            legend: Array.from(f.querySelectorAll(".legend li")).map((l) => {
              const r = (l as unknown as { getBoundingClientRect(): Rect }).getBoundingClientRect();
              return {
                text: l.textContent,
                dash: (l as unknown as Fig).dataset.dash,
                visible: r.width > 0 && r.height > 0,
                stroke: (l as unknown as Fig).querySelector("line")?.getAttribute("stroke"),
              };
            }),
            yTicks: JSON.parse(f.dataset.yTicks ?? "[]") as string[],
            yAxisSize: Number(f.dataset.yAxisSize),
            log: f.dataset.log === "true",
          };
        }),
      );
      assert.deepEqual(
        charts.map((c) => c.id),
        Object.keys(EXPECTED),
      );
      for (const c of charts) {
        const want = EXPECTED[c.id] as { labels: string[]; points: number[] };
        assert.equal(c.series, want.labels.length, c.id);
        assert.deepEqual(c.labels, want.labels, c.id);
        assert.deepEqual(c.points, want.points, c.id);
        assert.equal(c.canvas, 1, `${c.id} has its canvas`);
        // Every series in the legend, shown, and told apart by colour and dash.
        assert.deepEqual(
          c.legend.map((l) => l.text),
          want.labels,
          `${c.id} legend`,
        );
        assert.ok(
          c.legend.every((l) => l.visible),
          `${c.id}: every legend entry shown`,
        );
        assert.equal(
          new Set(c.legend.map((l) => `${l.stroke} ${l.dash}`)).size,
          c.legend.length,
          `${c.id}: each series its own colour and dash`,
        );
        assert.ok(c.yTicks.length >= 2, `${c.id} y ticks`);
        assert.deepEqual(spuriousTicks(c.yTicks, c.log), [], `${c.id} y ticks ${c.yTicks}`);
        // The axis is as wide as its longest tick label (plus tick and gap), so the axis title
        // beside it never overlaps them.
        const widest = await page.evaluate((ticks) => {
          const ctx = (
            (globalThis as unknown as Win).document as unknown as {
              createElement(t: string): { getContext(k: string): Ctx };
            }
          )
            .createElement("canvas")
            .getContext("2d");
          ctx.font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
          return Math.max(...ticks.map((t) => ctx.measureText(t).width));
        }, c.yTicks);
        assert.ok(
          c.yAxisSize >= widest + 10,
          `${c.id}: y axis ${c.yAxisSize}px for ${widest}px labels`,
        );
      }
      assert.equal(
        await page.getAttribute("#chart-spectrum", "data-log"),
        "true",
        "spectra on a log axis",
      );
      const summary = (await page.textContent("#summary")) ?? "";
      assert.match(
        summary,
        /fd_rand3d \(lower is better\), se vs baseline: one seed per arm: no interval, no conclusion \(final se 34\.47; baseline 35\.04\)/,
      );
      assert.doesNotMatch(summary, /of the baseline's steps|SE better|baseline better/);
      assert.equal(await page.locator("#ae-table tbody tr").count(), 7);
      assert.equal(await page.locator("#runs tbody tr").count(), 4 + 9 + 1);
      assert.equal(await page.locator("#runs tr.selected").count(), 4);

      // Samples: the pickers follow the compared runs' bundles; the same label and seed on both
      // bundles, then both play.
      assert.equal(await page.inputValue("#sample-model-a"), "fx-baseline");
      assert.equal(await page.inputValue("#sample-model-b"), "fx-se");
      assert.deepEqual(
        await page.$$eval("#sample-label option", (els) => els.map((e) => e.textContent)),
        ["a", "b"],
      );
      await page.selectOption("#sample-label", "b");
      await page.fill("#sample-seed", "3");
      await page.click("#sample-go");
      for (const side of ["a", "b"]) {
        await page.waitForSelector(`#sample-${side}[data-state='playing']`, { timeout: 180_000 });
        const played = await page.waitForFunction(
          (sel) => {
            const v = (globalThis as unknown as Win).document.querySelector(sel) as Video;
            return v.readyState >= 2 && v.error === null && v.currentTime > 0 && !v.paused
              ? { t: v.currentTime, w: v.videoWidth, h: v.videoHeight }
              : null;
          },
          `#sample-${side} video`,
          { timeout: 30_000 },
        );
        const first = (await played.jsonValue()) as { t: number; w: number; h: number };
        assert.equal(first.w, 32);
        assert.equal(first.h, 32);
        // Time goes on (the clip loops: compare against the time a moment ago, modulo a wrap).
        const later = await page.waitForFunction(
          ([sel, t0]) => {
            const v = (globalThis as unknown as Win).document.querySelector(sel as string) as Video;
            return v.currentTime !== t0 && v.error === null ? v.currentTime : null;
          },
          [`#sample-${side} video`, first.t] as const,
          { timeout: 10_000 },
        );
        assert.notEqual(await later.jsonValue(), first.t);
      }
      const captions = await page.$$eval(".sample figcaption", (els) =>
        els.map((e) => e.textContent),
      );
      assert.equal(captions[0], "a: fx-baseline (baseline) · denoiser dit-small-baseline");
      assert.equal(captions[1], "b: fx-se (se) · denoiser dit-small-se");

      mkdirSync(SHOTS, { recursive: true });
      const shot = join(parent, "admin.png");
      await page.screenshot({ path: shot, fullPage: true });
      copyFileSync(shot, join(SHOTS, "admin-screenshot.png"));

      // A phone: nothing wider than the screen, charts redrawn to fit.
      await page.setViewportSize({ width: 375, height: 800 });
      await page.waitForFunction(() => {
        const c = (globalThis as unknown as Win).document.querySelector("#chart-fd canvas") as {
          getBoundingClientRect(): { width: number };
        } | null;
        return c !== null && c.getBoundingClientRect().width <= 375;
      });
      const overflow = await page.evaluate(() => {
        const w = globalThis as unknown as Win;
        return w.document.documentElement.scrollWidth - w.innerWidth;
      });
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 375px screen`);
      await page.screenshot({ path: join(SHOTS, "admin-screenshot-phone.png"), fullPage: true });

      assert.deepEqual(errors, [], "no page errors");

      // Sign out: back to the form, and the API no longer answers.
      await Promise.all([page.waitForLoadState("load"), page.click("#signout button")]);
      await page.waitForSelector("#signin");
      const status = await page.evaluate(async () => (await fetch("/admin/api/runs")).status);
      assert.equal(status, 401);
      assert.ok(existsSync(dataDir));
    } finally {
      await context.close();
    }
  });
});

/** The texts of the SVGs under `selector` that run past their SVG's left or right edge. */
async function textsPastEdge(page: Page, selector: string): Promise<(string | null)[]> {
  const per = await page.$$eval(selector, (svgs) =>
    svgs.map((s) => {
      type Box = { getBoundingClientRect(): Rect; textContent: string | null };
      const f = s as unknown as Box & { querySelectorAll(sel: string): ArrayLike<Box> };
      const frame = f.getBoundingClientRect();
      return Array.from(f.querySelectorAll("text"))
        .filter((t) => {
          const r = t.getBoundingClientRect();
          return r.left < frame.left - 0.5 || r.right > frame.right + 0.5;
        })
        .map((t) => t.textContent);
    }),
  );
  assert.ok(per.length > 0, `an SVG at ${selector}`);
  return per.flat();
}

/** The shipped bundles that can generate, as their manifests say (read here, not by the server). */
function shippedGenerators(): { name: string; variant: string; classes: string[] }[] {
  const dir = join(REPO_ROOT, "models");
  return readdirSync(dir)
    .filter((name) => existsSync(join(dir, name, "manifest.json")))
    .map((name) => {
      const m = JSON.parse(readFileSync(join(dir, name, "manifest.json"), "utf8"));
      return { name, variant: m.variant, classes: m.classes, denoiser: Boolean(m.onnx?.denoiser) };
    })
    .filter((b) => b.denoiser)
    .map(({ denoiser: _, ...b }) => b)
    .sort((x, y) => (x.name < y.name ? -1 : 1));
}

describe("admin page in chromium: the first start on the shipped bundles and runs", {
  skip,
}, () => {
  let parent: string;
  let server: RunningServer;
  let browser: Browser;
  let admin: string;
  const runsDir = join(REPO_ROOT, "docs/results/runs");

  before(async () => {
    parent = tempDir("admin-first-start");
    // What `npm start` serves: models/ and the runs imported from docs/results/runs on start.
    const config = testConfig(join(parent, "data"), {
      DIFFUSABLE_MODELS_DIR: join(REPO_ROOT, "models"),
      DIFFUSABLE_RUNS_IMPORT_DIR: runsDir,
    });
    const db = openDb(config.dbFile);
    try {
      admin = createKey(db, "admin", "admin").secret;
    } finally {
      closeDb(db);
    }
    server = await startServer(config, () => {});
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  test("the Samples section picks the loaded baseline and SE bundles, and both play", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    try {
      const page = await context.newPage();
      page.on("pageerror", (err) => errors.push(err.message));
      page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(msg.text());
      });
      await signInAt(page, server.url, admin);
      await page.waitForSelector("body[data-ready='1']", { timeout: 60_000 });

      // The pickers: the loaded baseline bundle against the loaded SE one.
      const gens = shippedGenerators();
      const base = gens.find((b) => b.variant === "baseline");
      const se = gens.find((b) => b.variant === "se");
      assert.ok(base && se, "models/ ships a baseline and an SE bundle that generate");
      assert.equal(await page.inputValue("#sample-model-a"), base.name);
      assert.equal(await page.inputValue("#sample-model-b"), se.name);
      const labels = await page.$$eval("#sample-label option", (els) =>
        els.map((e) => e.textContent),
      );
      assert.ok(labels.length > 0, "a non-empty label list");
      assert.deepEqual(
        labels,
        base.classes.filter((c) => se.classes.includes(c)),
      );
      assert.equal(await page.isDisabled("#sample-go"), false);
      assert.equal(await page.locator("#pictures-section .error").count(), 0, "no red errors");
      for (const side of ["a", "b"]) {
        assert.equal(await page.getAttribute(`#sample-${side}`, "data-state"), "idle");
      }

      // One summary line per metric, as the server words it.
      const grid = (await page.evaluate(async () =>
        (await fetch("/admin/api/grid")).json(),
      )) as Grid;
      assert.ok(grid.summary.metrics.length > 0);
      // The trade-off on the shipped runs: their autoencoders' ae_eval PSNRs, the linear code's
      // dotted line beside them.
      assert.equal(grid.tradeOff.psnrFrom, "ae_eval");
      const shippedLinear = await page.$$eval("#trade-off line[data-kind='linear']", (ls) =>
        ls.map((l) => Number((l as unknown as SvgNode).getAttribute("data-psnr"))),
      );
      assert.ok(shippedLinear.length > 0, "a linear-code line");
      assert.deepEqual(
        await textsPastEdge(page, "#trade-off svg"),
        [],
        "no label of the trade-off runs past the plot's edge",
      );
      assert.deepEqual(shippedLinear, [
        ...new Set(grid.tradeOff.points.flatMap((p) => (p.linear === null ? [] : [p.linear]))),
      ]);
      assert.deepEqual(
        await page.$$eval("#grid-summary li[data-metric]", (els) => els.map((e) => e.textContent)),
        grid.summary.metrics.map((m) => m.text),
      );
      // The pictures: an image where the run folder has latent-channels.png, else the sentence.
      const pictures = await page.$$eval("#latents figure", (figs) =>
        figs.map((el) => {
          const f = el as unknown as Fig;
          const img = f.querySelector("img") as unknown as Img | null;
          return {
            run: f.dataset.run as string,
            loaded: img ? img.complete && img.naturalWidth > 0 : null,
            missing: f.querySelector(".missing") !== null,
          };
        }),
      );
      assert.ok(pictures.length >= 2, "baseline and SE autoencoders");
      for (const p of pictures) {
        const has = existsSync(join(runsDir, p.run, "latent-channels.png"));
        assert.deepEqual([p.loaded, p.missing], has ? [true, false] : [null, true], p.run);
      }

      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, "admin-first-start.png"), fullPage: true });

      // Generate: the same label and seed on both shipped bundles; both play.
      await page.fill("#sample-seed", "5");
      await page.click("#sample-go");
      for (const side of ["a", "b"]) {
        await page.waitForSelector(`#sample-${side}[data-state='playing']`, { timeout: 240_000 });
        const v = await page.evaluate((sel) => {
          const e = (globalThis as unknown as Win).document.querySelector(sel) as Video;
          return { w: e.videoWidth, h: e.videoHeight, error: e.error };
        }, `#sample-${side} video`);
        assert.deepEqual(v, { w: 64, h: 64, error: null }, side);
      }
      await page.setViewportSize({ width: 375, height: 800 });
      await page.waitForTimeout(300);
      const overflow = await page.evaluate(() => {
        const w = globalThis as unknown as Win;
        return w.document.documentElement.scrollWidth - w.innerWidth;
      });
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 375px screen`);
      await page.screenshot({ path: join(SHOTS, "admin-first-start-phone.png"), fullPage: true });
      assert.deepEqual(errors, [], "no page errors");
    } finally {
      await context.close();
    }
  });
});
