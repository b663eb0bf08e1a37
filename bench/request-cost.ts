// What one request costs the server's event loop, by kind: `diffusable serve` as a child process,
// one client sending one request at a time, and the CPU time of the server's main thread read
// from /proc before and after each batch of the same kind. Under load that thread
// answers everything, so its CPU per request bounds how long a burst of requests holds /healthz
// back (bench:load). Reported as ms per request and as a ratio to /healthz measured in the same
// run (the reference: what answering at all costs), so that a figure is comparable across
// machines and loads.
//
//   npm run bench:request-cost [-- --n 300 --model NAME --only SUBSTRING --profile DIR]
//   --only measures the kinds whose name contains it (and /healthz, the reference); --profile
//   writes the server's CPU profile (node --cpu-prof) into DIR.
//
// Kinds: /healthz; GET of a finished generation; POST /v1/generations and a multipart
// POST /v1/encodings answered 429 (the key's one active job slot is held by a slow job);
// a generation and an encoding accepted and waited for (Prefer: wait), which adds what the job
// runner does on the main thread for it.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { benchModels } from "./bench-models.ts";
import { benchVideo, mainThreadSchedstat, startBenchServer } from "./bench-server.ts";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "300" },
    model: { type: "string" },
    only: { type: "string" },
    profile: { type: "string" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  console.log(
    "usage: npm run bench:request-cost [-- --n 300 --model NAME --only SUBSTRING --profile DIR]",
  );
  process.exit(0);
}
const N = Number(values.n);
if (!Number.isInteger(N) || N < 10) {
  console.error("request-cost: --n must be an integer of at least 10");
  process.exit(2);
}

const mainThreadCpuMs = (pid: number) => mainThreadSchedstat(pid).cpu * 1000;

async function main() {
  const work = mkdtempSync(join(tmpdir(), "diffusable-request-cost-"));
  const { dir, model } = benchModels(work, "denoiser.onnx", values.model);
  const clip = readFileSync(benchVideo(join(work, "clip.mp4"), "160x120", 8, 3));
  // Ten minutes: its encoding holds the key's encoding slot while the 429s are measured.
  const long = readFileSync(benchVideo(join(work, "long.mp4"), "160x120", 8, 600));
  const { url, secret, child } = await startBenchServer({
    work,
    modelsDir: dir,
    keyName: "request-cost",
    // One active job per key and lane: a slow job holds it while the 429s are measured.
    env: { DIFFUSABLE_RUNS_IMPORT_DIR: "", DIFFUSABLE_MAX_ACTIVE_JOBS: "1" },
    ...(values.profile
      ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] }
      : {}),
  });
  const pid = child.pid as number;
  const auth = { authorization: `Bearer ${secret}` };
  const json = { ...auth, "content-type": "application/json" };
  const generation = (body: object, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/generations`, {
      method: "POST",
      headers: { ...json, ...headers },
      body: JSON.stringify({ model, label: 0, format: "npy", ...body }),
    });
  const upload = (headers: Record<string, string> = {}, video = clip) => {
    const form = new FormData();
    form.append("model", model);
    form.append("files", new Blob([video]), "clip.mp4");
    return fetch(`${url}/v1/encodings`, {
      method: "POST",
      headers: { ...auth, ...headers },
      body: form,
    });
  };
  const rows: { kind: string; ms: number; n: number }[] = [];
  async function measure(kind: string, n: number, send: () => Promise<Response>, status: number) {
    if (rows.length > 0 && values.only && !kind.includes(values.only)) return;
    for (let i = 0; i < 5; i++) {
      const res = await send(); // warm: JIT, statements
      const body = await res.text();
      if (res.status !== status) throw new Error(`${kind}: ${res.status} ${body.slice(0, 300)}`);
    }
    const before = mainThreadCpuMs(pid);
    for (let i = 0; i < n; i++) {
      const res = await send();
      await res.arrayBuffer();
      if (res.status !== status) throw new Error(`${kind}: ${res.status}, expected ${status}`);
    }
    rows.push({ kind, ms: (mainThreadCpuMs(pid) - before) / n, n });
  }
  try {
    await measure("GET /healthz", N, () => fetch(`${url}/healthz`), 200);
    const done = (await (await generation({ steps: 2 }, { prefer: "wait=60" })).json()) as {
      id: string;
    };
    await measure(
      "GET a finished generation",
      N,
      () => fetch(`${url}/v1/generations/${done.id}`, { headers: auth }),
      200,
    );
    const slow = (await (await generation({ steps: 200, frames: 65 })).json()) as { id: string };
    await measure("POST generation, 429", N, () => generation({ steps: 2 }), 429);
    await fetch(`${url}/v1/generations/${slow.id}/cancel`, { method: "POST", headers: auth });
    const slowUpload = (await (await upload({}, long)).json()) as { id: string };
    await measure("POST encoding upload, 429", N, () => upload(), 429);
    await fetch(`${url}/v1/encodings/${slowUpload.id}/cancel`, { method: "POST", headers: auth });
    const waited = Math.max(10, Math.round(N / 10));
    await measure(
      "POST generation, run (wait)",
      waited,
      () => generation({ steps: 2 }, { prefer: "wait=60" }),
      200,
    );
    await measure(
      "POST encoding upload, run (wait)",
      waited,
      () => upload({ prefer: "wait=60" }),
      200,
    );
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(work, { recursive: true, force: true });
  }
  const ref = rows[0]?.ms ?? NaN;
  console.log(
    `request cost on the server's main thread (${model}, one client, CPU time from /proc/PID/task/PID/schedstat)`,
  );
  for (const r of rows) {
    console.log(
      `  ${r.kind.padEnd(34)} ${r.ms.toFixed(2).padStart(7)} ms  x${(r.ms / ref).toFixed(1).padStart(6)} /healthz  (n=${r.n})`,
    );
  }
}

main().catch((err) => {
  console.error(`request-cost: ${(err as Error).message}`);
  process.exit(1);
});
