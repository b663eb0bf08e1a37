// /healthz latency (p50, p99) while 4 encoding jobs run, against idle, as a ratio. The server runs
// as a child process (`diffusable serve`), exactly as deployed; this process only sends requests.
//
//   npm run bench:healthz [-- --samples 400 --seconds 20 --model NAME]
// Models: DIFFUSABLE_MODELS_DIR, else ./models if it holds a bundle, else the tiny test fixture
// (made with `python3 -m diffusable.export.fixtures`).

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchModels } from "./bench-models.ts";
import { benchVideo, startBenchServer } from "./bench-server.ts";

const { values } = parseArgs({
  options: {
    samples: { type: "string", default: "400" },
    seconds: { type: "string", default: "20" },
    model: { type: "string" },
    jobs: { type: "string", default: "4" },
  },
});
const SAMPLES = Number(values.samples);
const JOBS = Number(values.jobs);
const work = mkdtempSync(join(tmpdir(), "diffusable-bench-"));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function sample(url: string, n: number, until?: () => boolean): Promise<number[]> {
  const times: number[] = [];
  while (times.length < n && (until === undefined || !until())) {
    const t0 = performance.now();
    const res = await fetch(`${url}/healthz`);
    await res.arrayBuffer();
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  return times.sort((a, b) => a - b);
}

async function main() {
  const { dir, model } = benchModels(work, "manifest.json", values.model);
  const video = benchVideo(join(work, "bench.mp4"), "320x240", 24, Number(values.seconds));
  const { url, secret, child } = await startBenchServer({
    work,
    modelsDir: dir,
    keyName: "bench",
    env: {
      DIFFUSABLE_JOB_CONCURRENCY: String(JOBS),
      DIFFUSABLE_MAX_ACTIVE_JOBS: String(JOBS * 4),
    },
  });
  try {
    await sample(url, 50); // warm-up
    const idle = await sample(url, SAMPLES);

    const bytes = readFileSync(video);
    const active = new Set<string>();
    const submit = async () => {
      const form = new FormData();
      form.append("model", model);
      form.append("mode", "whole");
      form.append("files", new Blob([bytes]), "bench.mp4");
      const res = await fetch(`${url}/v1/encodings`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}` },
        body: form,
      });
      if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
      active.add(((await res.json()) as { id: string }).id);
    };
    for (let i = 0; i < JOBS; i++) await submit();
    let running = 0;
    let finished = 0;
    let stopped = false;
    const poll = setInterval(async () => {
      if (stopped) return;
      let r = 0;
      for (const id of [...active]) {
        const job = (await fetch(`${url}/v1/encodings/${id}`, {
          headers: { authorization: `Bearer ${secret}` },
        })
          .then((res) => res.json())
          .catch(() => ({ status: "unknown" }))) as { status: string };
        if (stopped) return;
        if (job.status === "running") r++;
        if (job.status !== "queued" && job.status !== "running") {
          active.delete(id);
          finished++;
          if (!stopped) await submit().catch(() => {}); // keep JOBS encodings in flight
        }
      }
      running = r;
    }, 200);
    const deadline = Date.now() + 60_000;
    while (running < JOBS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const busy = await sample(url, SAMPLES);
    stopped = true;
    clearInterval(poll);

    const row = (name: string, t: number[]) =>
      `${name.padEnd(22)} p50 ${percentile(t, 50).toFixed(2).padStart(7)} ms   p99 ${percentile(t, 99).toFixed(2).padStart(7)} ms   (n=${t.length})`;
    console.log(
      `healthz latency, ${cpus().length} cores, model ${model}, ${JOBS} whole-mode encodings of a ${values.seconds}s 320x240 video`,
    );
    console.log(row("idle", idle));
    console.log(row(`${JOBS} encodings running`, busy));
    console.log(`jobs finished during the busy sample: ${finished}`);
    console.log(
      `ratio busy/idle: p50 ${(percentile(busy, 50) / percentile(idle, 50)).toFixed(2)}x, p99 ${(percentile(busy, 99) / percentile(idle, 99)).toFixed(2)}x`,
    );
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
