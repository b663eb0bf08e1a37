// Generation benchmarks, printed as ratios measured in the same run (never asserted):
//  (a) latency of one 64x64x17 clip, 25 Euler steps with guidance 2 (two denoiser rows per
//      step): sampling alone (seeded noise -> latent) and end to end (-> decoder -> mp4);
//  (b) throughput (clips/s) at 1, 4 and 8 concurrent requests sharing denoiser calls through one
//      DenoiserBatcher (as the job runner does for generations), and the ratio 8 : 1, for "npy" outputs (the
//      sampled latent: what batching speeds up) and "mp4" (end to end: the decoder and ffmpeg
//      run per video, unbatched);
//  (c) the same sampling in PyTorch eager (bench/torch_generate.py) on the same weights and
//      machine, as the ratio of the two latencies.
// The bundle is built here: a randomly initialised DiT of the shipped size (`compact`) exported
// with diffusable.export.denoiser_bundle next to a copy of models/small-se's autoencoder graphs.
// Latency does not depend on trained weights. Rounds alternate the sides; medians are printed,
// with the load average, since the machine is shared.
//
//   npx tsx bench/generate.ts [--threads N] [--intra N] [--torch-threads N] [--steps 25]
//       [--concurrency 1,4,8] [--rounds 2] [--max-batch 8] [--config compact] [--source models/small-se]

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DenoiserBatcher } from "../src/pipeline/generate/batcher.ts";
import { generateFiles, generateLatents } from "../src/pipeline/generate/generate.ts";
import { ModelRuntime } from "../src/pipeline/runtime.ts";

const ROOT = resolve(import.meta.dirname, "..");
const PYTHON = process.env.DIFFUSABLE_PYTHON ?? "/usr/bin/python3";
const cores = availableParallelism();
const { values } = parseArgs({
  options: {
    threads: { type: "string", default: String(cores) },
    intra: { type: "string" },
    "torch-threads": { type: "string", default: [...new Set([1, cores])].join(",") },
    steps: { type: "string", default: "25" },
    guidance: { type: "string", default: "2" },
    concurrency: { type: "string", default: "1,4,8" },
    rounds: { type: "string", default: "2" },
    "max-batch": { type: "string", default: "8" },
    config: { type: "string", default: "compact" },
    source: { type: "string", default: "models/small-se" },
    seconds: { type: "string", default: "3" },
    formats: { type: "string", default: "npy,mp4" },
  },
});
const threads = Number(values.threads);
const intra = Number(values.intra ?? Math.max(1, Math.floor(cores / threads)));
const steps = Number(values.steps);
const guidance = Number(values.guidance);
const levels = values.concurrency.split(",").map(Number);
const rounds = Number(values.rounds);
const maxBatch = Number(values["max-batch"]);
const formats = values.formats.split(",") as ("npy" | "mp4")[];

const work = mkdtempSync(join(tmpdir(), "bench-generate-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

function python(args: string[]): Record<string, unknown> {
  const r = spawnSync(PYTHON, ["bench/torch_generate.py", "--out", join(work, "models"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: join(ROOT, "src/training") },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`torch_generate.py ${args.join(" ")} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) as string);
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const fmt = (x: number, d = 2) => x.toFixed(d);

console.log(`bench:generate  load average (1, 5, 15 min) at start: ${load()}  (${cores} cores)`);
const common = [
  "--config",
  values.config,
  "--steps",
  String(steps),
  "--guidance",
  String(guidance),
];
python([...common, "--source", resolve(ROOT, values.source), "--bundle-only"]);
const name = `${values.config}-bench`;
console.log(
  `bundle: ${name} = random-init DiT "${values.config}" + ${values.source}'s autoencoder graphs ` +
    "(latency does not depend on trained weights)",
);
const rt = await ModelRuntime.open({
  modelsDir: join(work, "models"),
  threads,
  intraOpThreads: intra,
});
const bundle = rt.loaded(name);
const clip = (seed: number) => ({
  label: seed % bundle.manifest.classes.length,
  seed,
  steps,
  guidance,
  n: 1,
});
console.log(
  `onnxruntime-node: ${threads} worker(s) x ${intra} intra-op thread(s); PyTorch eager: ` +
    `${values["torch-threads"]} thread(s), the faster; ${steps} Euler steps, guidance ${guidance} ` +
    `(2 denoiser rows per clip and step), frames ${bundle.manifest.frames.default}, ` +
    `${bundle.manifest.resolution}x${bundle.manifest.resolution}; ${rounds} round(s), medians`,
);

// Warm-up: every worker opens its sessions.
await Promise.all(
  Array.from({ length: threads }, (_, i) =>
    generateFiles(rt, bundle, {
      ...clip(i),
      steps: 1,
      format: "mp4",
      outPaths: [join(work, `w${i}.mp4`)],
    }),
  ),
);

// The denoiser's cost per row at several batch sizes, one call at a time through the pool: what
// batching can save per row on this machine (on a CPU the matmuls are compute-bound early).
const perRow: string[] = [];
{
  const m = bundle.manifest;
  const hw = m.resolution / m.spatial_factor;
  const inner = [m.latent_channels, 1 + (m.frames.default - 1) / m.temporal_factor, hw, hw];
  const per = inner.reduce((a, d) => a * d, 1);
  for (const rows of [1, 2, 4, 8, 16]) {
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      await rt.run(bundle, "denoiser", {
        x: {
          dtype: "float32",
          dims: [rows, ...inner],
          data: new Float32Array(rows * per).fill(0.1),
        },
        t: { dtype: "float32", dims: [rows], data: new Float32Array(rows).fill(0.5) },
        label: { dtype: "int64", dims: [rows], data: new BigInt64Array(rows) },
      });
      if (i > 0) times.push(performance.now() - t0);
    }
    perRow.push(`${rows}: ${fmt(median(times) / rows)}`);
  }
}

const sampleMs: number[] = [];
const e2eMs: number[] = [];
const torchThreads = values["torch-threads"].split(",");
const torchMs = new Map<string, number[]>(torchThreads.map((t) => [t, []]));
const clipsPerS = new Map<string, number[]>();
let stats8 = "";
let seed = 1000;
for (let round = 0; round < rounds; round++) {
  let t0 = performance.now();
  await generateLatents(rt, bundle, clip(seed++));
  sampleMs.push(performance.now() - t0);
  t0 = performance.now();
  await generateFiles(rt, bundle, {
    ...clip(seed++),
    format: "mp4",
    outPaths: [join(work, "one.mp4")],
  });
  e2eMs.push(performance.now() - t0);
  for (const t of torchThreads) {
    const torch = python([...common, "--time-only", "--threads", t, "--seconds", values.seconds]);
    torchMs.get(t)?.push((torch.seconds_per_sample as number) * 1000);
  }
  for (const format of formats) {
    for (const c of levels) {
      const batcher = new DenoiserBatcher(rt, { maxBatch });
      t0 = performance.now();
      await Promise.all(
        Array.from({ length: c }, (_, i) =>
          generateFiles(rt, bundle, {
            ...clip(seed++),
            batcher,
            format,
            outPaths: [join(work, `c${c}-${i}.${format}`)],
          }),
        ),
      );
      const s = (performance.now() - t0) / 1000;
      const key = `${format} ${c}`;
      clipsPerS.set(key, [...(clipsPerS.get(key) ?? []), c / s]);
      if (c === Math.max(...levels)) stats8 = JSON.stringify(batcher.stats());
    }
  }
  console.log(`round ${round + 1} done, load average ${load()}`);
}
await rt.close();

const sample = median(sampleMs);
// PyTorch at its best thread count (on a shared machine more threads can be slower).
const torchByThreads = torchThreads.map((t) => ({ t, ms: median(torchMs.get(t) ?? [0]) }));
const best = torchByThreads.reduce((a, b) => (b.ms < a.ms ? b : a));
const torch = best.ms;
console.log("");
console.log(
  `latency, one clip, sampling only:   onnxruntime ${fmt(sample, 0)} ms   PyTorch eager ${fmt(torch, 0)} ms`,
);
console.log(
  `  PyTorch by threads: ${torchByThreads.map((x) => `${x.t}: ${fmt(x.ms, 0)} ms`).join(", ")}; the ratio uses ${best.t}`,
);
console.log(
  `  onnxruntime / PyTorch latency ratio: ${fmt(sample / torch)} (below 1: onnxruntime is faster)`,
);
console.log(`latency, one clip, end to end (mp4): ${fmt(median(e2eMs), 0)} ms`);
for (const format of formats) {
  const base = median(clipsPerS.get(`${format} ${levels[0]}`) ?? [0]);
  for (const c of levels) {
    const v = median(clipsPerS.get(`${format} ${c}`) ?? [0]);
    console.log(
      `throughput (${format}), ${c} concurrent request(s): ${fmt(v, 3)} clips/s  (x${fmt(v / base)} of ${levels[0]})`,
    );
  }
}
console.log(`denoiser ms per row by rows per call (one call at a time): ${perRow.join(", ")}`);
console.log(`batcher at ${Math.max(...levels)} concurrent: ${stats8}`);
console.log(`load average at end: ${load()}`);
