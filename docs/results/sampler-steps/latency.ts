// Service latency of one generation at 24 and 12 sampler steps, on the shipped bundles, through
// the service's own generateFiles (seeded noise -> sampler on onnxruntime -> decoder -> mp4).
// Rounds alternate the two step counts; medians and their ratio are printed with the load.
//
//   npx tsx docs/results/sampler-steps/latency.ts [rounds] [threads]
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generateFiles, generateLatents } from "../../../src/pipeline/generate/generate.ts";
import { ModelRuntime } from "../../../src/pipeline/runtime.ts";

const rounds = Number(process.argv[2] ?? 5);
const threads = Number(process.argv[3] ?? 1);
const work = mkdtempSync(join(tmpdir(), "latency-"));
const rt = await ModelRuntime.open({
  modelsDir: resolve(import.meta.dirname, "../../../models"),
  threads,
  intraOpThreads: 1,
});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(`load at start ${loadavg()[0]?.toFixed(2)}; ${threads} worker(s) x 1 thread`);
try {
  for (const name of ["small-baseline", "small-se"]) {
    const bundle = rt.loaded(name);
    const opts = (steps: number, seed: number) => ({ label: seed % 17, seed, steps, n: 1 });
    await generateFiles(rt, bundle, { ...opts(1, 0), format: "mp4", outPaths: [join(work, "w.mp4")] });
    const e2e = new Map<number, number[]>([[24, []], [12, []]]);
    const latents = new Map<number, number[]>([[24, []], [12, []]]);
    let seed = 1000;
    for (let r = 0; r < rounds; r++) {
      for (const steps of r % 2 ? [12, 24] : [24, 12]) {
        let t0 = performance.now();
        await generateLatents(rt, bundle, opts(steps, seed));
        latents.get(steps)?.push(performance.now() - t0);
        t0 = performance.now();
        await generateFiles(rt, bundle, {
          ...opts(steps, seed),
          format: "mp4",
          outPaths: [join(work, "one.mp4")],
        });
        e2e.get(steps)?.push(performance.now() - t0);
        seed++;
      }
    }
    const [s24, s12] = [median(latents.get(24) ?? []), median(latents.get(12) ?? [])];
    const [e24, e12] = [median(e2e.get(24) ?? []), median(e2e.get(12) ?? [])];
    console.log(
      `${name}: sampling ${s24.toFixed(0)} ms (24 steps) / ${s12.toFixed(0)} ms (12), ratio ` +
        `${(s12 / s24).toFixed(2)}; end to end (mp4) ${e24.toFixed(0)} / ${e12.toFixed(0)} ms, ` +
        `ratio ${(e12 / e24).toFixed(2)}`,
    );
  }
} finally {
  await rt.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(`load at end ${loadavg()[0]?.toFixed(2)}`);
