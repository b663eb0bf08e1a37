// Shared by the server, jobs and CLI tests: a tiny bundle (made once by diffusable.export.fixtures and
// cached under tests/.fixtures, keyed by the training code's hash), test videos made by ffmpeg,
// a per-test data dir, and the app or a listening server on it.

import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { JobRunner } from "../../src/pipeline/work/job-runner.ts";
import { type App, createApp } from "../../src/server/app.ts";
import { type Config, parseConfig } from "../../src/server/config.ts";
import { type RunningServer, startServer } from "../../src/server/serve.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { sqliteStore } from "../../src/store/sqlite-store.ts";
import type { Store } from "../../src/store/store.ts";
import { fixtureBundle } from "./media.ts";
import { REPO_ROOT } from "./python.ts";

export const MODEL = "tiny-fixture";

/** A models dir holding the tiny fixture bundle as models/tiny-fixture/: a cached copy of
 * media.ts's fixtureBundle(), so the bundle is built once for both helpers. */
export function fixtureModelsDir(): string {
  const bundle = fixtureBundle();
  const dir = `${bundle}-models`;
  if (existsSync(join(dir, MODEL, "manifest.json"))) return dir;
  const work = mkdtempSync(`${bundle}-models.tmp-`);
  try {
    cpSync(bundle, join(work, MODEL), { recursive: true });
    try {
      renameSync(work, dir);
    } catch (err) {
      // Another test file made it first.
      if (!existsSync(join(dir, MODEL, "manifest.json"))) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** Makes a test video with ffmpeg's testsrc2 (moving pattern) and returns its path. */
export function makeVideo(
  path: string,
  opts: { seconds?: number; size?: string; fps?: number; extra?: string[] } = {},
): string {
  const { seconds = 1, size = "64x48", fps = 8, extra = [] } = opts;
  const r = spawnSync(
    "ffmpeg",
    [
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${size}:rate=${fps}:duration=${seconds}`,
      "-pix_fmt",
      "yuv420p",
      ...extra,
      path,
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  return path;
}

const tempDirs = new Set<string>();

/** A fresh folder under the system's temp dir, removed when the test file's process exits
 *  (each test file runs in its own process), whether or not the test removes it first. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `diffusable-${prefix}-`));
  if (tempDirs.size === 0) {
    process.once("exit", () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  tempDirs.add(dir);
  return dir;
}

/** Every ".tmp-*" path left under dir. */
export function tempFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((p) =>
    p.split("/").some((part) => part.startsWith(".tmp-")),
  );
}

export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return parseConfig({
    PORT: "0",
    DIFFUSABLE_DATA_DIR: dataDir,
    DIFFUSABLE_MODELS_DIR: fixtureModelsDir(),
    DIFFUSABLE_THREADS: "1",
    DIFFUSABLE_JOB_CONCURRENCY: "1",
    ...env,
  });
}

export interface TestApp {
  app: App;
  /** The SQLite file (for direct reads), and the store over it the app uses. */
  db: Db;
  store: Store;
  /** The one runner of every kind of job. */
  runner: JobRunner;
  config: Config;
  admin: string;
  user: string;
  close(): Promise<void>;
}

/** The app on a fresh data dir, for app.request(); with an admin and a user key. */
export async function openTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const config = testConfig(tempDir("app"), env);
  const db = openDb(config.dbFile);
  const runtime = await ModelRuntime.open({ modelsDir: config.modelsDir, threads: 1 });
  // Let the worker finish loading onnxruntime before anything can close the pool: terminating a
  // worker in the middle of that load has aborted the process (Napi::Error) under heavy load.
  await runtime.pool.describe(runtime.loaded(MODEL).paths.encoder);
  const store = sqliteStore(db);
  const runner = new JobRunner({
    store,
    runtime,
    dataDir: config.dataDir,
    concurrency: { autoencoder: 1, generation: 1 },
  });
  await runner.start();
  let app: App;
  try {
    app = createApp({ store, db, runtime, runner, config });
  } catch (err) {
    await runner.stop();
    await runtime.close();
    closeDb(db);
    rmSync(config.dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    app,
    db,
    store,
    runner,
    config,
    admin: createKey(db, "admin", "admin").secret,
    user: createKey(db, "user", "user").secret,
    async close() {
      await runner.stop();
      await runtime.close();
      closeDb(db);
      rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestServer extends RunningServer {
  config: Config;
  admin: string;
  user: string;
}

/** A listening server (port 0) on a fresh data dir, with an admin and a user key. */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const config = testConfig(tempDir("server"), env);
  const db = openDb(config.dbFile);
  const admin = createKey(db, "admin", "admin").secret;
  const user = createKey(db, "user", "user").secret;
  closeDb(db);
  const server = await startServer(config, () => {});
  return {
    ...server,
    config,
    admin,
    user,
    async close() {
      await server.close();
      rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

export const auth = (secret: string) => ({ authorization: `Bearer ${secret}` });

/** Polls a job until it leaves queued/running. */
export async function waitForJob(
  base: string,
  path: string,
  secret: string,
  timeoutMs = 120_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${base}${path}`, { headers: auth(secret) });
    const job = (await res.json()) as Record<string, unknown>;
    if (job.status !== "queued" && job.status !== "running") return job;
    if (Date.now() > deadline) throw new Error(`job ${path} still ${job.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const randomName = () => randomBytes(4).toString("hex");

/** Runs the diffusable CLI (or another script) in a child process on the fixture bundle with
 * the given data dir and one model thread; returns its exit code and output. */
export function runCli(
  dataDir: string,
  args: string[],
  env: Record<string, string> = {},
  script = "src/server/cli.ts",
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 120_000,
    env: {
      ...process.env,
      DIFFUSABLE_DATA_DIR: dataDir,
      DIFFUSABLE_MODELS_DIR: fixtureModelsDir(),
      DIFFUSABLE_THREADS: "1",
      ...env,
    },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
