// A load test against a real server (`diffusable serve` as a child process, exactly as deployed):
// `--concurrency` (default 50) clients send mixed requests for `--seconds` (default 30): uploads
// (encodings of a short video), generations, polls of their jobs, SSE follows, and /healthz.
// Prints the answers by kind (completed 2xx / 429 / other 4xx / 5xx / network errors), p50/p99
// latency of /healthz and of polls, the server's peak RSS (VmHWM), and whether it stayed up.
// Exit 1 on any 5xx or a crash.
//
//   npm run bench:load [-- --seconds 30 --concurrency 50 --model NAME]
// Models: DIFFUSABLE_MODELS_DIR, else ./models if it holds a bundle that can generate, else the
// tiny test fixture (made with `python3 -m diffusable.fixtures`).

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchModels } from "./bench-models.ts";
import { benchVideo, startBenchServer } from "./bench-server.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    concurrency: { type: "string", default: "50" },
    model: { type: "string" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log("usage: npm run bench:load [-- --seconds 30 --concurrency 50 --model NAME]");
  process.exit(0);
}
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const work = mkdtempSync(join(tmpdir(), "diffusable-load-"));

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number) : NaN;
};

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main() {
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
    },
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

  const started = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => client(i)));
  const elapsed = (Date.now() - started) / 1000;
  const up =
    crashed === null &&
    (await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    ));
  const rss = crashed === null ? peakRss(child.pid as number) : NaN;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  rmSync(work, { recursive: true, force: true });

  console.log(`load: ${CONCURRENCY} clients for ${elapsed.toFixed(1)} s against ${model}`);
  let fiveXX = 0;
  for (const [kind, by] of Object.entries(counts)) {
    fiveXX += by["5xx"] ?? 0;
    console.log(
      `  ${kind.padEnd(10)} ${Object.entries(by)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
    );
  }
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  console.log(
    `  /healthz   p50 ${ms(percentile(healthz, 50))}  p99 ${ms(percentile(healthz, 99))}  (n=${healthz.length})`,
  );
  console.log(
    `  polls      p50 ${ms(percentile(polls, 50))}  p99 ${ms(percentile(polls, 99))}  (n=${polls.length})`,
  );
  console.log(`  server peak RSS ${rss.toFixed(0)} MiB; still serving: ${up}; 5xx: ${fiveXX}`);
  if (fiveXX > 0 || !up) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`load: ${(err as Error).message}`);
  process.exit(1);
});
