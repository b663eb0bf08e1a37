// Native-size encoding's memory bound, as a ratio measured in the same run (never asserted):
// peak RSS of a clip-mode encode of a 1920x1080 video at size=native (tiled in space: docs/bundle.md
// "Tiling") against the same encode of a 256x256 video (one piece), both of the same length, each in
// its own child process (bench/encode-child.ts, one model thread), on a shipped conv bundle. The
// issue's bound is 1.5x. The 1080p video at size=bundle (the 64x64 crop) is printed beside them.
//
//   npx tsx bench/native-size.ts [--model small-se] [--frames 17] [--models DIR]

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const ROOT = resolve(import.meta.dirname, "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: "small-se" },
    frames: { type: "string", default: "17" },
    models: { type: "string", default: join(ROOT, "models") },
  },
});

const work = mkdtempSync(join(tmpdir(), "bench-native-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

/** A testsrc2 video of this size and frame count at 8 fps (H.264, like a camera file). */
function video(size: string): string {
  const path = join(work, `${size}.mp4`);
  const src = `testsrc2=s=${size}:r=8`;
  const args = ["-v", "error", "-y", "-f", "lavfi", "-i", src, "-frames:v", values.frames];
  const r = spawnSync("ffmpeg", [...args, "-c:v", "libx264", "-pix_fmt", "yuv420p", path], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
  return path;
}

interface Measured {
  maxRssMiB: number;
  seconds: number;
  latentShape: number[];
  size: { mode: string; width: number; height: number };
  tiles: number;
}

function measure(input: string, size: "bundle" | "native"): Measured {
  const args = ["--import", "tsx", "bench/encode-child.ts", values.models, values.model];
  const r = spawnSync(process.execPath, [...args, input, "clip", size], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`encode-child failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) as string) as Measured;
}

const rows: [string, Measured][] = [];
const small = measure(video("256x256"), "native");
rows.push(["256x256 native", small]);
const hd = video("1920x1080");
const big = measure(hd, "native");
rows.push(["1920x1080 native", big]);
rows.push(["1920x1080 bundle", measure(hd, "bundle")]);
console.log(`model ${values.model}, ${values.frames} frames, clip mode, one model thread`);
console.log("case               frame       tiles  latent shape        peak RSS MiB  seconds");
for (const [name, m] of rows) {
  console.log(
    `${name.padEnd(18)} ${`${m.size.width}x${m.size.height}`.padEnd(11)} ${String(m.tiles).padStart(5)}  ${m.latentShape.join("x").padEnd(18)} ${m.maxRssMiB.toFixed(0).padStart(12)}  ${m.seconds.toFixed(1).padStart(7)}`,
  );
}
console.log(
  `peak RSS 1080p / 256x256 at native size: ${(big.maxRssMiB / small.maxRssMiB).toFixed(2)} (bound 1.5)`,
);
