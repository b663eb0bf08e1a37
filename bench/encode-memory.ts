// Memory of one large whole-mode encoding, against a real server (`diffusable serve` as a child
// process): the server's RSS before the job (after a small warm-up job, so that the models'
// sessions are open), its peak during the job, and its RSS some seconds after the job ended, as
// ratios against the RSS before, all measured in this one run (printed, never asserted).
//
//   node --import tsx bench/encode-memory.ts [--seconds 60 --fps 240 --dtype float32 --after 10 --model NAME]
// The video is ffmpeg's testsrc2 at 160x120 and `--fps`, `--seconds` long, encoded at `--fps`.
// The case was a 10-minute video at fps 240 (1.4 -> 3.6 GB, never given back).

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchModels } from "./bench-models.ts";
import { benchVideo, startBenchServer } from "./bench-server.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    fps: { type: "string", default: "240" },
    dtype: { type: "string", default: "float32" },
    after: { type: "string", default: "10" },
    model: { type: "string" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log(
    "usage: node --import tsx bench/encode-memory.ts [--seconds 60 --fps 240 --dtype float32 --after 10 --model NAME]",
  );
  process.exit(0);
}
const SECONDS = Number(values.seconds);
const FPS = Number(values.fps);
const AFTER = Number(values.after);
const work = mkdtempSync(join(tmpdir(), "diffusable-memory-"));

const MiB = (kb: number) => kb / 1024;
function status(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const { dir, model } = benchModels(work, "encoder_step.onnx", values.model);
  const small = readFileSync(benchVideo(join(work, "small.mp4"), "160x120", FPS, 1));
  const big = readFileSync(benchVideo(join(work, "big.mp4"), "160x120", FPS, SECONDS));
  const { url, secret, child } = await startBenchServer({
    work,
    modelsDir: dir,
    keyName: "memory",
    env: { DIFFUSABLE_RUNS_IMPORT_DIR: "" },
  });
  const pid = child.pid as number;
  const headers = { authorization: `Bearer ${secret}` };
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, status(pid, "VmRSS"));
  }, 100);
  const encode = async (bytes: Buffer, name: string) => {
    const form = new FormData();
    form.append("model", model);
    form.append("mode", "whole");
    form.append("fps", String(FPS));
    form.append("dtype", values.dtype as string);
    form.append("files", new Blob([bytes]), name);
    const res = await fetch(`${url}/v1/encodings`, { method: "POST", headers, body: form });
    if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    const t0 = Date.now();
    for (;;) {
      const job = (await (await fetch(`${url}/v1/encodings/${id}`, { headers })).json()) as {
        status: string;
        items: { metadata?: { latentShape?: number[] } }[];
        error?: { message: string } | null;
      };
      if (job.status === "succeeded") {
        return { seconds: (Date.now() - t0) / 1000, shape: job.items[0]?.metadata?.latentShape };
      }
      if (job.status !== "queued" && job.status !== "running") {
        throw new Error(`${name}: ${job.status}: ${job.error?.message}`);
      }
      await sleep(500);
    }
  };
  try {
    await encode(small, "small.mp4"); // opens the sessions
    await sleep(2000);
    const before = status(pid, "VmRSS");
    peak = before;
    const load = loadavg()[0]?.toFixed(2);
    const job = await encode(big, "big.mp4");
    const atEnd = status(pid, "VmRSS");
    await sleep(AFTER * 1000);
    const after = status(pid, "VmRSS");
    clearInterval(sampler);
    const frames = SECONDS * FPS;
    console.log(
      `encode memory: one whole-mode encoding of a ${SECONDS} s video at fps ${FPS} (${frames} frames, ${values.dtype}, latents [${job.shape?.join(", ")}]) on ${model}, ${job.seconds.toFixed(1)} s; load ${load}`,
    );
    const row = (name: string, kb: number) =>
      `  ${name.padEnd(26)} ${MiB(kb).toFixed(0).padStart(6)} MiB  ${(kb / before).toFixed(2)}x`;
    console.log(row("RSS before", before));
    console.log(row("RSS peak during the job", peak));
    console.log(row("RSS when it finished", atEnd));
    console.log(row(`RSS ${AFTER} s after`, after));
  } finally {
    clearInterval(sampler);
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`memory: ${(err as Error).message}`);
  process.exit(1);
});
