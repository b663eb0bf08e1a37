// Peak and retained RSS of gathering a long whole-mode encoding's latents and making its .npy
// bytes, without the model: the 10-minute video at fps 240 (36000 latent frames of
// 16 x 8 x 8, 147 MB as float32) arrives as 9000 step outputs of 4 latent frames. `old` keeps
// the parts and joins them (concatTime), then rounds to float16 through two copies; `new` copies
// each part into one buffer (TimeAccumulator), rounds in place and hands the .npy over as its
// header and a view of the data (npyParts) rather than one buffer. Each runs in its own process;
// printed as MiB and as ratios against the RSS before (never asserted).
//
//   node --import tsx bench/latents-memory.ts [--minutes 10 --dtype float16]

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { encodeNpy, npyParts } from "../src/pipeline/media/npy-file.ts";
import {
  concatTime,
  roundToHalf,
  roundToHalfInPlace,
  TimeAccumulator,
} from "../src/pipeline/media/tensor.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    dtype: { type: "string", default: "float16" },
    way: { type: "string" },
  },
});
const status = (field: string) =>
  Number(
    new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "utf8"))?.[1],
  ) / 1024;

if (values.way) {
  const [c, hw, perStep] = [16, 64, 4];
  const steps = (Number(values.minutes) * 60 * 240) / 16;
  const before = status("VmRSS");
  let latent: Float32Array;
  const part = (k: number) =>
    Float32Array.from({ length: c * perStep * hw }, (_, i) => (i + k) % 7);
  if (values.way === "old") {
    const parts: Float32Array[] = [];
    for (let k = 0; k < steps; k++) parts.push(part(k));
    latent = concatTime(parts, c, hw);
    if (values.dtype === "float16") latent = roundToHalf(latent);
  } else {
    const acc = new TimeAccumulator(c, hw, steps * perStep);
    for (let k = 0; k < steps; k++) acc.push(part(k));
    latent = acc.finish();
    if (values.dtype === "float16") roundToHalfInPlace(latent);
  }
  const array = {
    dtype: values.dtype as "float16" | "float32",
    shape: [1, c, latent.length / (c * hw), 8, 8],
    data: latent,
  };
  // `old` made the file's bytes in one buffer; `new` writes the header and a view of the data
  // (float16: packed once) one after the other, as the job runner does.
  const parts = values.way === "old" ? [encodeNpy(array)] : npyParts(array);
  const bytes = parts.reduce((n, p) => n + p.length, 0);
  const peak = status("VmHWM");
  console.log(JSON.stringify({ before, peak, bytes: bytes / 2 ** 20 }));
} else {
  console.log(
    `latents of a ${values.minutes}-minute video at fps 240 (${values.dtype}), gathered and made into .npy bytes:`,
  );
  for (const way of ["old", "new"]) {
    const r = spawnSync(
      process.execPath,
      ["--import", "tsx", import.meta.filename, "--way", way, ...process.argv.slice(2)],
      { encoding: "utf8" },
    );
    const { before, peak, bytes } = JSON.parse(r.stdout) as {
      before: number;
      peak: number;
      bytes: number;
    };
    console.log(
      `  ${way}: peak RSS ${peak.toFixed(0)} MiB (${(peak / before).toFixed(2)}x the ${before.toFixed(0)} MiB before; .npy ${bytes.toFixed(0)} MiB)`,
    );
  }
}
