// A load test against a real server (`diffusable serve` as a child process, exactly as deployed):
// `--concurrency` (default 50) clients send mixed requests for `--seconds` (default 30): uploads
// (encodings of a short video), generations, polls of their jobs, SSE follows, and /healthz.
// Prints the answers by kind (completed 2xx / 429 / other 4xx / 5xx / network errors), p50/p99
// latency of /healthz as a paced prober in its own process sees it (bench/healthz-probe.mjs: one
// request every 50 ms, as a load balancer's check; the headline figure), of /healthz inside the
// clients' mix (which adds this busy process's own delay) and of polls, the server's event-loop
// delay (perf_hooks monitorEventLoopDelay, preloaded from bench/loop-monitor.mjs: p50/p99/max,
// which CPU taken by other processes affects less than latency does), its peak RSS (VmHWM, with
// its helper processes': the model workers and ffmpeg's process host), the
// load average before and after, and whether it stayed up. Exit 1 on any 5xx or a crash.
// `--profile DIR` writes the server's CPU profile (node --cpu-prof) into DIR.
//
//   npm run bench:load [-- --seconds 30 --concurrency 50 --model NAME --profile DIR
//                          --client-nice 10]
//   The clients run at --client-nice (default 10), the server and the prober at 0: remote clients
//   would cost the server's machine nothing, and clients beside it at equal priority measure
//   their own competition for the cores.
// Models: DIFFUSABLE_MODELS_DIR, else ./models if it holds a bundle that can generate, else the
// tiny test fixture (made with `python3 -m diffusable.export.fixtures`).

import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, setPriority, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { benchModels } from "./bench-models.ts";
import { benchVideo, mainThreadSchedstat, startBenchServer } from "./bench-server.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    concurrency: { type: "string", default: "50" },
    model: { type: "string" },
    profile: { type: "string" },
    "client-nice": { type: "string", default: "10" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log(
    "usage: npm run bench:load [-- --seconds 30 --concurrency 50 --model NAME --profile DIR --client-nice 10]",
  );
  process.exit(0);
}
const cpus = availableParallelism();
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
// The clients' own CPU is an artifact of sending the load from the server's machine (remote
// clients cost it nothing): they run at this nice value, the server and the prober at 0.
const CLIENT_NICE = Number(values["client-nice"]);
/** The paced prober's interval (bench/healthz-probe.mjs). */
const PROBE_MS = 50;
const work = mkdtempSync(join(tmpdir(), "diffusable-load-"));

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number) : NaN;
};

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The server's helper processes: its model workers (DIFFUSABLE_MODEL_WORKERS=process) and its
 *  process host (ffmpeg's parent), whose memory is the server's as much as its own is. */
function workerProcesses(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/))
    .filter(Boolean)
    .map(Number)
    .filter((c) => {
      try {
        return /session-worker|process-worker/.test(readFileSync(`/proc/${c}/cmdline`, "utf8"));
      } catch {
        return false;
      }
    });
}

interface LoopStats {
  p50: number;
  p99: number;
  max: number;
  mean: number;
  count: number;
  gc: { count: number; total: number; max: number; over10: number; maxKind: string };
}

async function readLoopStats(path: string): Promise<LoopStats> {
  for (let i = 0; i < 100; i++) {
    try {
      return JSON.parse(readFileSync(path, "utf8")) as LoopStats;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("the server's loop monitor wrote no stats");
}

const loadAverage = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

async function main() {
  const loadBefore = loadAverage();
  const loopStats = join(work, "loop-stats.json");
  const monitor = resolve(import.meta.dirname, "loop-monitor.mjs");
  const nodeArgs = ["--import", monitor];
  if (values.profile) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`);
  const { dir, model } = benchModels(work, "denoiser.onnx", values.model);
  const clip = readFileSync(benchVideo(join(work, "clip.mp4"), "160x120", 8, 3));
  const { url, secret, child } = await startBenchServer({
    work,
    modelsDir: dir,
    keyName: "load",
    env: {
      DIFFUSABLE_RUNS_IMPORT_DIR: "",
      DIFFUSABLE_MAX_ACTIVE_JOBS: "16",
      DIFFUSABLE_MAX_QUEUED_GENERATIONS: "32",
      DIFFUSABLE_LOOP_STATS: loopStats,
    },
    nodeArgs,
  });
  let crashed: string | null = null;
  child.once("exit", (code, signal) => {
    crashed = `the server exited (${code ?? signal})`;
  });
  const headers = { authorization: `Bearer ${secret}` };
  const counts: Record<string, Record<string, number>> = {};
  const count = (kind: string, outcome: string) => {
    counts[kind] ??= {};
    (counts[kind] as Record<string, number>)[outcome] =
      ((counts[kind] as Record<string, number>)[outcome] ?? 0) + 1;
  };
  const outcome = (status: number) =>
    status < 300 ? "completed" : status === 429 ? "429" : status < 500 ? `${status}` : "5xx";
  const healthz: number[] = [];
  const polls: number[] = [];
  const jobs: string[] = [];
  const deadline = Date.now() + SECONDS * 1000;

  async function timed(kind: string, f: () => Promise<Response>, into?: number[]) {
    const t0 = performance.now();
    try {
      const res = await f();
      if (kind === "sse") {
        // Follow for at most 3 s.
        const reader = res.body?.getReader();
        const stop = Date.now() + 3000;
        while (reader && Date.now() < stop) {
          const { done } = await Promise.race([
            reader.read(),
            new Promise<{ done: true }>((r) => setTimeout(() => r({ done: true }), 3000)),
          ]);
          if (done) break;
        }
        await reader?.cancel().catch(() => {});
      } else {
        const body = await res.text();
        if ((kind === "upload" || kind === "generation") && res.status < 300) {
          const id = (JSON.parse(body) as { id?: string }).id;
          if (id) jobs.push(kind === "upload" ? `/v1/encodings/${id}` : `/v1/generations/${id}`);
        }
      }
      into?.push(performance.now() - t0);
      count(kind, outcome(res.status));
    } catch (err) {
      count(kind, `error: ${(err as Error).message}`);
    }
  }

  async function client(i: number) {
    let n = i;
    while (Date.now() < deadline && !crashed) {
      const pick = n++ % 10;
      const job = jobs[Math.floor(Math.random() * jobs.length)];
      if (pick < 2) {
        const form = new FormData();
        form.append("model", model);
        form.append("files", new Blob([clip]), "clip.mp4");
        await timed("upload", () =>
          fetch(`${url}/v1/encodings`, { method: "POST", headers, body: form }),
        );
      } else if (pick < 4) {
        await timed("generation", () =>
          fetch(`${url}/v1/generations`, {
            method: "POST",
            headers: { ...headers, "content-type": "application/json" },
            body: JSON.stringify({ model, label: 0, steps: 2, format: "npy" }),
          }),
        );
      } else if (pick < 7 && job) {
        await timed("poll", () => fetch(`${url}${job}`, { headers }), polls);
      } else if (pick < 8 && job) {
        await timed("sse", () => fetch(`${url}${job}/events`, { headers }));
      } else {
        await timed("healthz", () => fetch(`${url}/healthz`), healthz);
      }
    }
  }

  child.kill("SIGUSR2"); // the loop monitor starts counting now, not during start-up
  const ownLoop = monitorEventLoopDelay({ resolution: 10 });
  ownLoop.enable();
  const before = mainThreadSchedstat(child.pid as number);
  const started = Date.now();
  const probe = new Promise<{ times: number[]; failed: number }>((resolveProbe, reject) => {
    const script = resolve(import.meta.dirname, "healthz-probe.mjs");
    execFile(process.execPath, [script, url, String(SECONDS), String(PROBE_MS)], (err, stdout) =>
      err ? reject(err) : resolveProbe(JSON.parse(stdout)),
    );
  });
  // this thread only (Linux: nice is per thread), once the server and the prober have started
  setPriority(0, CLIENT_NICE);
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => client(i)));
  const probed = await probe;
  const elapsed = (Date.now() - started) / 1000;
  ownLoop.disable();
  const after = crashed === null ? mainThreadSchedstat(child.pid as number) : null;
  const mainCpu = after ? after.cpu - before.cpu : NaN;
  const mainWait = after ? after.wait - before.wait : NaN;
  const up =
    crashed === null &&
    (await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    ));
  const rss = crashed === null ? peakRss(child.pid as number) : NaN;
  const workerRss =
    crashed === null ? workerProcesses(child.pid as number).map((w) => peakRss(w)) : [];
  // The loop's delay over the load, as the monitor writes it on the second signal.
  child.kill("SIGUSR2");
  const loop = await readLoopStats(loopStats);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  rmSync(work, { recursive: true, force: true });

  console.log(`load: ${CONCURRENCY} clients for ${elapsed.toFixed(1)} s against ${model}`);
  let fiveXX = 0;
  let requests = 0;
  for (const [kind, by] of Object.entries(counts)) {
    fiveXX += by["5xx"] ?? 0;
    requests += Object.values(by).reduce((a, b) => a + b, 0);
    console.log(
      `  ${kind.padEnd(10)} ${Object.entries(by)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
    );
  }
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const probeTimes = probed.times;
  console.log(
    `  /healthz   p50 ${ms(percentile(probeTimes, 50))}  p99 ${ms(percentile(probeTimes, 99))}  max ${ms(Math.max(...probeTimes))}  (paced prober, own process, every ${PROBE_MS} ms; n=${probeTimes.length}, failed ${probed.failed})`,
  );
  console.log(
    `  /healthz   p50 ${ms(percentile(healthz, 50))}  p99 ${ms(percentile(healthz, 99))}  (in the clients' mix, with this process's own delay; n=${healthz.length})`,
  );
  console.log(
    `  polls      p50 ${ms(percentile(polls, 50))}  p99 ${ms(percentile(polls, 99))}  (n=${polls.length})`,
  );
  console.log(
    `  event loop delay p50 ${ms(loop.p50)}  p99 ${ms(loop.p99)}  max ${ms(loop.max)}  (monitorEventLoopDelay)`,
  );
  console.log(
    `  garbage collection on the main thread: ${loop.gc.count} pauses, ${ms(loop.gc.total)} in all, longest ${ms(loop.gc.max)} (${loop.gc.maxKind}), ${loop.gc.over10} over 10 ms`,
  );
  console.log(
    `  server main thread: ${mainCpu.toFixed(1)} CPU s in ${elapsed.toFixed(1)} s, ${((mainCpu * 1000) / requests).toFixed(1)} ms per request, ${mainWait.toFixed(1)} s runnable but waiting for a core; this client's own loop delay p99 ${ms(ownLoop.percentile(99) / 1e6)}`,
  );
  const workersMiB = workerRss.reduce((a, b) => a + b, 0);
  console.log(
    `  server peak RSS ${rss.toFixed(0)} MiB${workerRss.length ? ` + ${workerRss.length} helper processes (model workers, process host) ${workersMiB.toFixed(0)} MiB = ${(rss + workersMiB).toFixed(0)} MiB (peaks summed)` : ""}; still serving: ${up}; 5xx: ${fiveXX}`,
  );
  console.log(`  load average before ${loadBefore}, after ${loadAverage()} (${cpus} cores)`);
  if (fiveXX > 0 || !up) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`load: ${(err as Error).message}`);
  process.exit(1);
});
