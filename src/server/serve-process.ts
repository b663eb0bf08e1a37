// `diffusable serve` in a child process, as it is deployed: started on a free port over a data
// folder and a models folder, resolved once it prints the URL it listens on. The benches and the
// tests that need a real process (a kill, real sockets) start the server through this.

import { type ChildProcess, spawn } from "node:child_process";
import { REPO_ROOT } from "../env.ts";

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** Everything the child has printed so far (stdout, and stderr when captured). */
  log: () => string;
}

export function spawnServe(opts: {
  dataDir: string;
  modelsDir: string;
  /** More server settings (DIFFUSABLE_*), over the defaults. */
  env?: Record<string, string>;
  /** Read stderr into log() too, instead of passing it through to ours. */
  captureStderr?: boolean;
  /** Kill the child and reject when it has not said it listens by then; default: wait. */
  timeoutMs?: number;
  /** More node options before the script (benches: `--import` a monitor, `--cpu-prof`). */
  nodeArgs?: string[];
}): Promise<ServeProcess> {
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), "--import", "tsx", "src/server/cli.ts", "serve"],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        PORT: "0",
        DIFFUSABLE_DATA_DIR: opts.dataDir,
        DIFFUSABLE_MODELS_DIR: opts.modelsDir,
        ...opts.env,
      },
      stdio: ["ignore", "pipe", opts.captureStderr ? "pipe" : "inherit"],
    },
  );
  let out = "";
  return new Promise((resolve, reject) => {
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            child.kill("SIGKILL"); // never left behind
            reject(new Error(`the server did not start in ${opts.timeoutMs} ms:\n${out}`));
          }, opts.timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1], log: () => out });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}):\n${out}`));
    });
  });
}
