// The admin page in a real browser: playwright-core drives Debian's chromium (headless; never a
// downloaded browser) against a real server on a random port with a temp SQLite database holding
// the fixture runs (imported by the registry's importer) and two fixture bundles that name them.
// Signs in through the form, opens the default comparison, checks every chart's series and point
// counts as drawn by uPlot, generates and plays the sample videos, saves screenshots (desktop and
// 375px phone) under tests/.fixtures/, and signs out. Skipped only when /usr/bin/chromium is missing.

import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { type RunningServer, startServer } from "../../src/server/serve.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { adminModelsDir, importFixtureRuns } from "./admin-fixtures.ts";
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
interface Win {
  document: {
    cookie: string;
    querySelector(sel: string): unknown;
    documentElement: { scrollWidth: number };
  };
  innerWidth: number;
}
const SHOTS = join(REPO_ROOT, "tests/.fixtures");

/** Each chart: its series labels and the points uPlot holds per series. */
const EXPECTED: Record<string, { labels: string[]; points: number[] }> = {
  fd: { labels: ["baseline · dit-small-baseline", "se · dit-small-se"], points: [5, 5] },
  class_score: { labels: ["baseline · dit-small-baseline", "se · dit-small-se"], points: [5, 5] },
  ae_loss: { labels: ["baseline · ae-small-baseline", "se · ae-small-se"], points: [60, 60] },
  ae_psnr: { labels: ["baseline · ae-small-baseline", "se · ae-small-se"], points: [6, 6] },
  spectrum: {
    labels: ["latent · ae-small-baseline", "latent · ae-small-se", "video"],
    points: [63, 63, 63],
  },
};

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
      // Every chart, as uPlot drew it (read back from the instance into data attributes).
      const charts = await page.$$eval("figure.chart", (figs) =>
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
        /SE reaches the baseline's final fd_rand3d .*\(15\.5% of the baseline's steps\)/,
      );
      assert.match(summary, /Final PSNR/);
      assert.equal(await page.locator("#ae-table tbody tr").count(), 7);
      assert.equal(await page.locator("#runs tbody tr").count(), 4);
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
