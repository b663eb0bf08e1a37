// What a server benchmark drives: a test video made by ffmpeg, and `diffusable serve` started as
// a child process on a free port over a scratch data folder that holds one API key.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../src/env.ts";
import { createKey } from "../src/store/api-keys.ts";
import { closeDb, openDb } from "../src/store/db.ts";

/** A moving test pattern (ffmpeg's testsrc2) as a yuv420p mp4; returns its path. */
export function benchVideo(path: string, size: string, fps: number, seconds: number): string {
  const r = spawnSync(
    "ffmpeg",
    [
      ...["-v", "error", "-y", "-f", "lavfi"],
      ...["-i", `testsrc2=size=${size}:rate=${fps}:duration=${seconds}`],
      ...["-pix_fmt", "yuv420p", path],
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr || r.error}`);
  return path;
}

export interface BenchServer {
  url: string;
  /** A user key's secret, for the Authorization header. */
  secret: string;
  child: ChildProcess;
}

/** Serves modelsDir from work/data with one user key named keyName; env adds server settings. */
export async function startBenchServer(opts: {
  work: string;
  modelsDir: string;
  keyName: string;
  env: Record<string, string>;
}): Promise<BenchServer> {
  const dataDir = join(opts.work, "data");
  const db = openDb(join(dataDir, "diffusable.sqlite"));
  const secret = createKey(db, opts.keyName, "user").secret;
  closeDb(db);
  const child = spawn(process.execPath, ["--import", "tsx", "src/server/cli.ts", "serve"], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: "0",
      DIFFUSABLE_DATA_DIR: dataDir,
      DIFFUSABLE_MODELS_DIR: opts.modelsDir,
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((res, rej) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) res(m[1]);
    });
    child.once("exit", (code) => rej(new Error(`server exited ${code}: ${out}`)));
  });
  return { url, secret, child };
}
