// Shared by the pipeline tests: test videos made by ffmpeg's lavfi sources, and the tiny fixture
// bundle from diffusable.export.fixtures (built once per training-code hash, cached under tests/.fixtures).

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { join } from "node:path";
import { REPO_ROOT, runPython } from "./python.ts";

/** Runs ffmpeg with these arguments (after -y, quiet) and returns the output path (the last arg). */
export function ffmpegMake(args: readonly string[]): string {
  const r = spawnSync("ffmpeg", ["-nostdin", "-hide_banner", "-v", "error", "-y", ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(" ")} failed: ${r.stderr || r.error}`);
  return args[args.length - 1] as string;
}

/** A moving test pattern (testsrc2) as H.264 mp4. */
export function testVideo(
  path: string,
  opts: { size?: string; fps?: number; seconds?: number } = {},
) {
  const src = `testsrc2=s=${opts.size ?? "48x40"}:r=${opts.fps ?? 8}:d=${opts.seconds ?? 3}`;
  return ffmpegMake([
    "-f",
    "lavfi",
    "-i",
    src,
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    path,
  ]);
}

/** The fixture bundle (tiny-fixture: 32x32, 4 latent channels, default 9 frames); returns its dir. */
export function fixtureBundle(): string {
  const src = join(REPO_ROOT, "src/training/diffusable");
  const hash = createHash("sha256");
  for (const f of readdirSync(src)
    .filter((f) => f.endsWith(".py"))
    .sort()) {
    hash.update(f).update(readFileSync(join(src, f)));
  }
  const root = join(REPO_ROOT, "tests/.fixtures");
  const dir = join(root, `pipeline-bundle-${hash.digest("hex").slice(0, 12)}`);
  if (existsSync(join(dir, "manifest.json"))) return dir;
  mkdirSync(root, { recursive: true });
  const work = mkdtempSync(join(root, ".tmp-pipeline-bundle-"));
  try {
    runPython(["-m", "diffusable.export.fixtures", "--out", work], 300_000);
    try {
      renameSync(join(work, "bundle"), dir);
    } catch (err) {
      if (!existsSync(join(dir, "manifest.json"))) throw err; // another test file made it first
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** A fresh models dir holding a copy of the fixture bundle as `name`. */
export function modelsDirWith(parent: string, name = "tiny"): string {
  const models = join(parent, "models");
  mkdirSync(models, { recursive: true });
  cpSync(fixtureBundle(), join(models, name), { recursive: true });
  return models;
}

/** Is a process with this pid still alive (and not a zombie)? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = spawnSync("ps", ["-o", "stat=", "-p", String(pid)], {
    encoding: "utf8",
  }).stdout.trim();
  return stat !== "" && !stat.startsWith("Z");
}
