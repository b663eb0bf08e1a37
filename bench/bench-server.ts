// What a server benchmark drives: a test video made by ffmpeg, and `diffusable serve` started as
// a child process on a free port over a scratch data folder that holds one API key.

import { type ChildProcess, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnServe } from "../src/server/serve-process.ts";
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
  /** More node options for the server process (--import a monitor, --cpu-prof). */
  nodeArgs?: string[];
}): Promise<BenchServer> {
  const dataDir = join(opts.work, "data");
  const db = openDb(join(dataDir, "diffusable.sqlite"));
  const secret = createKey(db, opts.keyName, "user").secret;
  closeDb(db);
  const { child, url } = await spawnServe({
    dataDir,
    modelsDir: opts.modelsDir,
    env: opts.env,
    ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}),
  });
  return { url, secret, child };
}

/** A process's main thread as the scheduler counts it (/proc/PID/task/PID/schedstat, ns, not the
 *  10 ms ticks of /proc/PID/stat): seconds on a core, and seconds runnable but waiting for one. */
export function mainThreadSchedstat(pid: number): { cpu: number; wait: number } {
  const [cpu, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ");
  return { cpu: Number(cpu) / 1e9, wait: Number(wait) / 1e9 };
}
