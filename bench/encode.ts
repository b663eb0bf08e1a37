// Encoding benchmarks, printed as ratios measured in the same run (never asserted):
//  (a) whole-mode encode peak RSS of a 3-minute video against a 10-second one (each in its own
//      child process: bench/encode-child.ts), with the largest bundle in models/ or the tiny
//      fixture;
//  (b) encoder throughput (clips/s) of onnxruntime-node (through the worker pool) against PyTorch
//      eager (bench/torch_encode.py) on the same weights, batch and thread count, on the picked
//      bundle's own architecture and size (its manifest's autoencoder_config, seeded weights; or
//      --ckpt). PyTorch exports the bundle it times, so both sides run identical weights; their
//      outputs are compared. Each side's achieved GFLOP/s (the convolution FLOPs it runs per
//      batch over its time: the model's for PyTorch eager, the inference form's, 10% fewer, for
//      onnxruntime) is printed beside the machine's fp32 GEMM rate measured in the run.
//      PyTorch is timed twice: on the model as trained (the ratio column) and on the inference
//      form the export runs (autoencoder.inference_form), which PyTorch runs faster too.
//
//   npx tsx bench/encode.ts [--threads 1,2] [--rounds 3] [--batch 4] [--seconds 3] [--ckpt runs/<id>/checkpoints/last.pt]
//                           [--models DIR] [--long 180] [--short 10]

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { readNpy } from "../src/pipeline/media/npy-file.ts";
import { openSession, runSession } from "../src/pipeline/onnx/onnx-session.ts";
import { SessionPool } from "../src/pipeline/onnx/session-pool.ts";
import { benchModels } from "./bench-models.ts";

const ROOT = resolve(import.meta.dirname, "..");
const PYTHON = process.env.DIFFUSABLE_PYTHON ?? "/usr/bin/python3";
const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "1,2" },
    rounds: { type: "string", default: "3" },
    batch: { type: "string", default: "4" },
    seconds: { type: "string", default: "3" },
    ckpt: { type: "string" },
    models: { type: "string" },
    long: { type: "string", default: "180" },
    short: { type: "string", default: "10" },
  },
});
const threads = values.threads.split(",").map(Number);
const batch = Number(values.batch);
const seconds = Number(values.seconds);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: join(ROOT, "src/training"), ...env },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

const work = mkdtempSync(join(tmpdir(), "bench-encode-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

function video(path: string, secondsLong: number): string {
  // 320x240 at 24 fps, so ffmpeg resamples and resizes as it would for a real upload.
  run("ffmpeg", [
    ...[
      "-nostdin",
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=s=320x240:r=24:d=${secondsLong}`,
    ],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path],
  ]);
  return path;
}

interface ChildResult {
  maxRssMiB: number;
  seconds: number;
  frames: number;
  latentShape: number[];
}

function measure(modelsDir: string, name: string, input: string): ChildResult {
  const out = run(process.execPath, [
    "--import",
    "tsx",
    join(ROOT, "bench/encode-child.ts"),
    modelsDir,
    name,
    input,
    "whole",
  ]);
  return JSON.parse(out.trim().split("\n").pop() as string);
}

const fmt = (x: number, digits = 1) => x.toFixed(digits);

// (a) peak RSS
const { dir: modelsDir, model: name } = benchModels(work, "encoder.onnx", undefined, values.models);
const short = video(join(work, "short.mp4"), Number(values.short));
const long = video(join(work, "long.mp4"), Number(values.long));
const rows: [string, ChildResult][] = [
  [`${values.short} s`, measure(modelsDir, name, short)],
  [`${values.long} s`, measure(modelsDir, name, long)],
];
const [shortR, longR] = [rows[0]?.[1] as ChildResult, rows[1]?.[1] as ChildResult];
console.log(`\n(a) whole-mode encode, bundle ${name}, 1 worker thread`);
console.log("| video | frames | latent shape | wall s | peak RSS MiB |");
console.log("| --- | --- | --- | --- | --- |");
for (const [label, r] of rows) {
  console.log(
    `| ${label} | ${r.frames} | ${r.latentShape.join("x")} | ${fmt(r.seconds)} | ${fmt(r.maxRssMiB)} |`,
  );
}
console.log(
  `peak RSS ratio long/short: ${fmt(longR.maxRssMiB / shortR.maxRssMiB, 2)}x (frames ratio ${fmt(longR.frames / shortR.frames)}x)`,
);

// (b) throughput, same weights and batch, at each thread count. The machine may be shared (e.g. by
// training runs), so PyTorch and onnxruntime take turns, several rounds each, and medians are
// compared: a burst of load then hits both sides alike.
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const torchDir = join(work, "torch");
function torchRound(t: number) {
  const args = [
    "--out",
    torchDir,
    "--threads",
    String(t),
    "--batch",
    String(batch),
    "--seconds",
    String(seconds),
  ];
  if (values.ckpt) args.push("--ckpt", values.ckpt);
  else if (name !== "tiny-fixture") args.push("--manifest", join(modelsDir, name, "manifest.json"));
  return JSON.parse(
    run(PYTHON, [join(ROOT, "bench/torch_encode.py"), ...args])
      .trim()
      .split("\n")
      .pop() as string,
  );
}
// onnxruntime at t threads, laid out two ways: as the service runs it (SessionPool's default: t
// workers of one thread each, so t batches in flight), and as one session with t intra-op threads
// (one batch at a time, like PyTorch's side).
type Layout = "workers" | "intra";
async function ortRound(t: number, layout: Layout): Promise<{ clipsPerS: number; parity: number }> {
  const input = await readNpy(join(torchDir, "input.npy"));
  const expected = await readNpy(join(torchDir, "expected.npy"));
  const encoder = join(torchDir, "bundle", "encoder.onnx");
  const size = layout === "workers" ? t : 1;
  const pool = new SessionPool({ size, intraOpThreads: layout === "workers" ? 1 : t });
  try {
    const feeds = () => ({
      video: {
        dtype: "float32" as const,
        dims: input.shape,
        data: (input.data as Float32Array).slice(),
      },
    });
    // warm-up: opens the session in every worker
    const [first] = await Promise.all(
      Array.from({ length: size }, () => pool.run(encoder, feeds(), { transfer: true })),
    );
    const got = first?.latent?.data as Float32Array;
    let parity = 0;
    for (let i = 0; i < got.length; i++) {
      parity = Math.max(parity, Math.abs((got[i] as number) - (expected.data[i] as number)));
    }
    // As encodeClips keeps the pool busy: `size` batches in flight, each finished one replaced
    // at once (not rounds of `size` that wait for their slowest).
    let iters = 0;
    const start = performance.now();
    const lane = async () => {
      while (iters < 3 * size || performance.now() - start < seconds * 1000) {
        await pool.run(encoder, feeds(), { transfer: true });
        iters++;
      }
    };
    await Promise.all(Array.from({ length: size }, lane));
    return { clipsPerS: batch / ((performance.now() - start) / 1000 / iters), parity };
  } finally {
    await pool.close();
  }
}
// The fp32 GEMM reference in onnxruntime (MLAS) at t threads: a 1024³ MatMul exported by
// torch_encode.py, so the encoder's GFLOP/s stands beside what the same runtime reaches on a GEMM.
async function ortGemm(t: number): Promise<number> {
  const n = 1024;
  const session = await openSession(join(torchDir, "gemm.onnx"), { intraOpThreads: t });
  const feeds = { x: { dtype: "float32" as const, dims: [n, n], data: new Float32Array(n * n) } };
  feeds.x.data.fill(0.5);
  await runSession(session, feeds);
  let iters = 0;
  const start = performance.now();
  while (iters < 3 || performance.now() - start < 1000) {
    await runSession(session, feeds);
    iters++;
  }
  await session.release();
  return (2 * n ** 3 * iters) / ((performance.now() - start) / 1000) / 1e9;
}
const rounds = Number(values.rounds);
const table: string[] = [];
let config = "";
let source = "";
let torchVersion = "";
let worstParity = 0;
let flopsPerBatch = 0; // the model as trained (PyTorch eager runs these)
let flopsPerBatchFast = 0; // its inference form (the ONNX graph runs these)
for (const t of threads) {
  const ort: number[] = [];
  const ortIntra: number[] = [];
  const pt: number[] = [];
  const ptFast: number[] = [];
  const gemm: number[] = [];
  const ortGemmRates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const tr = torchRound(t);
    [config, source, torchVersion] = [tr.config, tr.source, tr.torch];
    flopsPerBatch = tr.flops_per_batch;
    flopsPerBatchFast = tr.flops_per_batch_inference_form;
    pt.push(tr.clips_per_s);
    ptFast.push(tr.clips_per_s_inference_form);
    gemm.push(tr.gemm_gflops_per_s);
    ortGemmRates.push(await ortGemm(t));
    const o = await ortRound(t, "workers");
    worstParity = Math.max(worstParity, o.parity);
    ort.push(o.clipsPerS);
    ortIntra.push(t === 1 ? o.clipsPerS : (await ortRound(t, "intra")).clipsPerS);
  }
  const gflops = (clipsPerS: number, flops: number) => (clipsPerS / batch) * flops * 1e-9;
  table.push(
    `| ${t} | ${fmt(median(ort))} | ${fmt(median(pt))} | ${fmt(median(ort) / median(pt), 2)}x | ${fmt(median(ortIntra))} (${fmt(median(ortIntra) / median(pt), 2)}x) | ${fmt(median(ptFast))} (${fmt(median(ort) / median(ptFast), 2)}x) | ${fmt(gflops(median(ort), flopsPerBatchFast))} | ${fmt(gflops(median(pt), flopsPerBatch))} | ${fmt(median(ortGemmRates))} | ${fmt(median(gemm))} | ${ort.map((x) => fmt(x)).join(", ")} / ${pt.map((x) => fmt(x)).join(", ")} |`,
  );
}
console.log(
  `\n(b) encoder throughput, ${config} config, batch of ${batch} clips, medians of ${rounds} alternating rounds`,
);
console.log(`weights: ${source}; max |onnx - torch| = ${worstParity.toExponential(1)}`);
console.log(
  `encoder FLOPs per clip: ${fmt((flopsPerBatch / batch) * 1e-9, 2)} G as trained (PyTorch eager), ${fmt((flopsPerBatchFast / batch) * 1e-9, 2)} G in the inference form (onnxruntime); each side's GFLOP/s counts the FLOPs it runs`,
);
console.log(
  `| threads | onnxruntime-node clips/s (the service's pool: t workers × 1 thread) | PyTorch ${torchVersion} eager clips/s (t threads) | ratio | onnxruntime, 1 session × t threads (ratio) | PyTorch eager on the export's inference form clips/s (onnxruntime-node's ratio to it) | ort GFLOP/s | torch GFLOP/s | fp32 GEMM GFLOP/s (1024³, onnxruntime MLAS) | fp32 GEMM GFLOP/s (1024³, torch) | rounds (ort / torch) |`,
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const row of table) console.log(row);
