// The admin page in a real browser: playwright-core drives Debian's chromium (headless; never a
// downloaded browser) against a real server on a random port with a temp SQLite database holding
// the fixture runs (imported by the registry's importer: the recorded runs, the 3 arms × 3 seeds
// grid fixture and the shipped se-spatial autoencoder) and two fixture bundles that name the
// recorded runs. Signs in through the form, opens the comparison of the recorded pair, checks the
// experiment view (a band and a mean line per arm on every chart, the class score's chance line,
// the exact summary lines of a win and of a tie, the se-spatial column and rows), every uPlot
// chart's series and point counts as drawn, generates and plays the sample videos, saves
// screenshots (desktop and 375px phone) under tests/.fixtures/, and signs out. Skipped only when
// /usr/bin/chromium is missing.

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { type RunningServer, startServer } from "../../src/server/serve.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import {
  adminModelsDir,
  importFixtureRuns,
  importGridRuns,
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
const BAND_CHARTS = ["fd_cls3d", "fd_rand3d", "class_score", "val_loss"];
/** The summary's line of a detectable win (fd_rand3d) and of a tie (fd_cls3d), as
 * diffusable.seed_stats words them for the grid fixture. */
const WIN = "fd_rand3d (lower is better), se vs baseline: se lower by 19.6% [13.6%, 25.2%]";
const TIE =
  "fd_cls3d (lower is better), se vs baseline: no difference detectable at this budget (rel -0.0% [-18.5%, 22.7%])";

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)`;

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
      importFixtureRuns(db);
      importGridRuns(db);
    } finally {
      closeDb(db);
    }
    server = await startServer(config, () => {});
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  async function signIn(page: Page, key: string) {
    await page.goto(`${server.url}/admin`);
    await page.fill("#key", key);
    await Promise.all([page.waitForLoadState("load"), page.click("#signin button[type=submit]")]);
  }

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

      // The experiment view: one SVG chart per metric, a band and a mean line per arm.
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
              })),
          );
          return {
            id: f.dataset.chart as string,
            band: f.dataset.band,
            bands: bandPaths ?? [],
            means: meanPaths ?? [],
            chance: Array.from(f.querySelectorAll("line[data-kind='chance']")).map((l) =>
              Number(l.getAttribute("data-value")),
            ),
            legend: Array.from(f.querySelectorAll(".legend li")).map((l) => l.textContent),
          };
        }),
      );
      assert.deepEqual(
        bands.map((b) => b.id),
        BAND_CHARTS,
      );
      for (const b of bands) {
        assert.equal(b.band, "mean ± sd over seeds", b.id);
        assert.deepEqual(
          b.bands.map((p) => [p.arm, p.points]),
          ARMS.map((arm) => [arm, 4]),
          `${b.id}: a band per arm over the 4 eval steps`,
        );
        assert.deepEqual(
          b.means.map((p) => [p.arm, p.points]),
          ARMS.map((arm) => [arm, 4]),
          `${b.id}: a mean line per arm`,
        );
        for (const p of b.bands)
          assert.ok(p.height > 1 && p.width > 100, `${b.id} ${p.arm} band drawn`);
        assert.equal(new Set(b.bands.map((p) => p.fill)).size, 3, `${b.id}: one colour per arm`);
        assert.deepEqual(
          b.bands.map((p) => p.fill),
          b.means.map((p) => p.stroke),
          `${b.id}: band and line of an arm share its colour`,
        );
        assert.deepEqual(b.legend.slice(0, 3), [
          "baseline (3 seeds)",
          "se (3 seeds)",
          "se-spatial (3 seeds)",
        ]);
        assert.ok(b.legend.includes("line: mean; band: mean ± sd over seeds"), b.id);
        assert.deepEqual(b.chance, b.id === "class_score" ? [1 / 17] : [], `${b.id} chance line`);
      }
      // The summary: one line per metric and comparison, the win and the tie word for word.
      const lines = await page.$$eval("#grid-summary li[data-metric]", (els) =>
        els.map((e) => {
          const d = (e as unknown as Fig).dataset;
          return { key: `${d.metric} ${d.a} ${d.b}`, text: e.textContent };
        }),
      );
      assert.equal(lines.length, 12, "4 metrics × 3 comparisons");
      assert.equal(new Set(lines.map((l) => l.key)).size, 12, "never two lines for one comparison");
      assert.equal(lines.find((l) => l.key === "fd_rand3d se baseline")?.text, WIN);
      assert.equal(lines.find((l) => l.key === "fd_cls3d se baseline")?.text, TIE);
      const reach = (await page.textContent("#grid-summary")) ?? "";
      assert.match(
        reach,
        /fd_rand3d: se reaches the baseline's final mean fd_rand3d \(10\.03\) in 3 of 3 seeds, first at step 233 ± 58 \(sd\)\./,
      );
      // ... and each comparison paired by seed, as diffusable.seed_stats words it
      assert.ok(
        reach.includes(
          "fd_rand3d (lower is better), se-spatial vs baseline, paired by seed (n=3): se-spatial lower by 9.3% [7.6%, 11.0%]",
        ),
        reach,
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
      assert.equal(await page.locator("#reach-table tbody tr[data-arm='se-spatial']").count(), 4);
      assert.match(
        (await page.textContent("#grid-arms")) ?? "",
        /se-spatial: 3 seeds \(AE ae-small-se-spatial\)/,
      );

      // Every uPlot chart, as uPlot drew it (read back from the instance into data attributes).
      const charts = await page.$$eval("figure.chart:not(.band-chart)", (figs) =>
        figs.map((el) => {
          const f = el as unknown as Fig;
          return {
            id: f.dataset.chart as string,
            series: Number(f.dataset.series),
            labels: JSON.parse(f.dataset.labels ?? "[]") as string[],
            points: JSON.parse(f.dataset.points ?? "[]") as number[],
            canvas: f.querySelectorAll("canvas").length,
            legend: Array.from(f.querySelectorAll(".u-legend .u-series .u-label")).map(
              (l) => l.textContent,
            ),
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
        assert.deepEqual(c.legend.slice(1), want.labels, `${c.id} legend`);
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

      // Samples: the same label and seed on both bundles, then both play.
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
      assert.match(captions[0] ?? "", /dit-small-baseline · bundle fx-baseline/);
      assert.match(captions[1] ?? "", /dit-small-se · bundle fx-se/);

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
