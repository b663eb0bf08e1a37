// scripts/generate-per-class.ts starts every class from an image (--image) or continues a clip
// (--video), against a real server on the tiny fixture bundle: one file per class, and
// samples.json names the input.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ffmpegMake } from "./media.ts";
import { REPO_ROOT } from "./python.ts";
import { MODEL, makeVideo, startTestServer, type TestServer, tempDir } from "./server-helpers.ts";

let server: TestServer;
const work = tempDir("per-class-inputs");

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.close();
});

/** Runs the script (asynchronously: the server answering it lives in this process). */
function run(args: string[]): Promise<{ status: number | null; out: string }> {
  const argv = ["--import", "tsx", "scripts/generate-per-class.ts", "--url", server.url];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...argv, "--key", server.user, ...args],
      { cwd: REPO_ROOT, timeout: 240_000, env: { ...process.env, INIT_CWD: work } },
      (err, stdout, stderr) => {
        const status = err ? ((err as { code?: unknown }).code as number | null) : 0;
        resolve({ status: typeof status === "number" ? status : null, out: `${stdout}${stderr}` });
      },
    );
  });
}

test("--image and --video: every class starts from the file; bad combinations are one line, exit 1", async () => {
  ffmpegMake([
    "-f",
    "lavfi",
    "-i",
    "mandelbrot=size=40x40:end_pts=1",
    "-frames:v",
    "1",
    join(work, "p.png"),
  ]);
  const clip = makeVideo(join(work, "c.mp4"), { seconds: 9 / 8 });
  const common = ["--model", MODEL, "--n", "1", "--steps", "1", "--format", "npy"];
  const img = await run([...common, "--image", "p.png", "--frames", "5", "--out", "img"]);
  assert.equal(img.status, 0, img.out);
  const listing = JSON.parse(readFileSync(join(work, "img", MODEL, "samples.json"), "utf8"));
  assert.deepEqual(listing.input, { image: "p.png", output: null });
  assert.deepEqual(readdirSync(join(work, "img", MODEL)).sort(), [
    "a-0.npy",
    "b-0.npy",
    "samples.json",
  ]);
  const vid = await run([
    ...common,
    "--video",
    clip,
    "--frames",
    "4",
    "--output",
    "whole",
    "--out",
    "vid",
  ]);
  assert.equal(vid.status, 0, vid.out);
  const both = await run([...common, "--image", "p.png", "--video", clip]);
  assert.equal(both.status, 1);
  assert.match(both.out, /give --image or --video, not both/);
  const bad = await run([...common, "--image", "nope.png"]);
  assert.equal(bad.status, 1);
  assert.match(bad.out, /--image nope\.png: ENOENT/);
});
