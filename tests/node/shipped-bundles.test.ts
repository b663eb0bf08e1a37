// The bundles shipped in models/: each loads (manifest valid, every sha256 right) and reconstructs
// a video made by ffmpeg above the PSNR floor its own manifest states.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { reconstructFile } from "../../src/pipeline/autoencoder/reconstruct.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { testVideo } from "./media.ts";
import { REPO_ROOT } from "./python.ts";

let rt: ModelRuntime;
const work = mkdtempSync(join(tmpdir(), "shipped-"));

before(async () => {
  rt = await ModelRuntime.open({ modelsDir: join(REPO_ROOT, "models"), threads: 1 });
});
after(async () => {
  await rt.close();
  rmSync(work, { recursive: true, force: true });
});

test("every shipped bundle is valid", () => {
  assert.deepEqual(rt.invalidBundles(), []);
  const names = rt.bundles().map((b) => b.name);
  assert.ok(names.includes("small-se") && names.includes("small-baseline"), names.join(", "));
});

// Issue 21: a shipped bundle (graphs, weights files, manifest) stays within 25 MB, so that a
// larger denoiser comes with weights stored once (docs/bundle.md), not with a heavier clone.
test("each shipped bundle is within the 25 MB budget", () => {
  for (const bundle of rt.bundles()) {
    const { manifest } = rt.loaded(bundle.name);
    const files = Object.values(manifest.files).reduce((n, f) => n + f.bytes, 0);
    assert.ok(files > 1e6, `${bundle.name}: ${files} bytes of files`);
    assert.ok(files <= 25e6, `${bundle.name} holds ${(files / 1e6).toFixed(1)} MB of files`);
  }
});

test("each shipped bundle reconstructs a test video above its manifest's PSNR floor", async (t) => {
  const video = testVideo(join(work, "pattern.mp4"), { size: "96x64", fps: 8, seconds: 3 });
  for (const bundle of rt.bundles()) {
    const floor = bundle.metrics?.psnr_floor_db;
    assert.equal(typeof floor, "number", `${bundle.name} states no psnr_floor_db`);
    const out = join(work, `${bundle.name}.mp4`);
    const r = await reconstructFile(rt, bundle.name, video, { format: "mp4", outPath: out });
    const mean = r.psnr.reduce((a, b) => a + b, 0) / r.psnr.length;
    t.diagnostic(
      `${bundle.name}: mean PSNR ${mean.toFixed(2)} dB over ${r.frames} frames (floor ${floor})`,
    );
    assert.ok(r.frames >= 17, `${bundle.name}: ${r.frames} frames`);
    assert.ok(mean > (floor as number), `${bundle.name}: mean PSNR ${mean} <= floor ${floor}`);
  }
});
