// No ffmpeg (or any other child) outlives the work it was started for, and no ".tmp-*" file is
// left, on every path: a frame source that fails, a timeout, an abort, and each failing job kind
// through the app (too short, not a video, bad latents, canceled).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { encodeNpy } from "../../src/pipeline/media/npy-file.ts";
import { encodeFrames } from "../../src/pipeline/media/video.ts";
import { alive, childrenOf, cmdlineOf } from "./proc.ts";
import {
  auth,
  MODEL,
  makeVideo,
  openTestApp,
  type TestApp,
  tempDir,
  tempFilesUnder,
} from "./server-helpers.ts";

/** The processes the code under test started and left running: this process's children and,
 *  through the process host (process-worker.mjs: the server's own, alive while it is), what the
 *  host started (ffmpeg, ffprobe). */
function children(): number[] {
  const out: number[] = [];
  for (const pid of childrenOf(process.pid)) {
    const cmdline = cmdlineOf(pid);
    // tsx's esbuild service belongs to the test runner's loader, not to the code under test.
    if (/esbuild/.test(cmdline)) continue;
    if (/process-worker\.mjs/.test(cmdline)) out.push(...childrenOf(pid));
    else out.push(pid);
  }
  return out;
}

/** Waits up to 2 s for every child to be gone (a killed process needs a moment to be reaped). */
async function noChildren(what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (children().length > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const left = children().map(cmdlineOf);
  assert.deepEqual(left, [], `${what}: child processes still alive`);
}

const work = tempDir("processes");
let t: TestApp;
before(async () => {
  t = await openTestApp();
});
after(() => t.close());

const frame = new Uint8Array(32 * 32 * 3);

test("encodeFrames: a frame source that fails ends ffmpeg and leaves no output", async () => {
  for (const format of ["mp4", "webm", "gif"] as const) {
    const outPath = join(work, `fail.${format}`);
    async function* frames() {
      yield frame;
      yield frame;
      // The model "fails" while ffmpeg waits for more input on its stdin.
      await new Promise((r) => setTimeout(r, 100));
      throw new Error("the model failed");
    }
    await assert.rejects(
      encodeFrames(frames(), { width: 32, height: 32, fps: 8, format, outPath }),
      /the model failed/,
    );
    await noChildren(`a failing source (${format})`);
    assert.deepEqual(
      readdirSync(work).filter((f) => f.startsWith("fail.")),
      [],
    );
  }
});

test("encodeFrames: timeout and abort end ffmpeg while it waits for frames", async () => {
  async function* slow(signal?: AbortSignal) {
    yield frame;
    await new Promise((r) => {
      const timer = setTimeout(r, 1500);
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        r(null);
      });
    });
    yield frame;
  }
  await assert.rejects(
    encodeFrames(slow(), {
      width: 32,
      height: 32,
      fps: 8,
      format: "mp4",
      outPath: join(work, "slow.mp4"),
      timeoutMs: 200,
    }),
    (err: { code?: string }) => err.code === "timeout",
  );
  await noChildren("a timeout");
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  await assert.rejects(
    encodeFrames(slow(ac.signal), {
      width: 32,
      height: 32,
      fps: 8,
      format: "mp4",
      outPath: join(work, "abort.mp4"),
      signal: ac.signal,
    }),
    (err: { code?: string }) => err.code === "aborted",
  );
  await noChildren("an abort");
  assert.deepEqual(readdirSync(work), []);
});

test("encodeFrames: a frame of the wrong size ends ffmpeg", async () => {
  await assert.rejects(
    encodeFrames([frame, new Uint8Array(5)], {
      width: 32,
      height: 32,
      fps: 8,
      format: "mp4",
      outPath: join(work, "bad.mp4"),
    }),
    (err: { code?: string }) => err.code === "bad_dimensions",
  );
  await noChildren("a bad frame");
});

async function post(path: string, name: string, bytes: Uint8Array, fields: Record<string, string>) {
  const form = new FormData();
  for (const [k, v] of Object.entries({ model: MODEL, ...fields })) form.append(k, v);
  form.append("files", new Blob([bytes]), name);
  return t.app.request(path, { method: "POST", headers: auth(t.user), body: form });
}

async function settle(path: string, res: Response): Promise<string> {
  const body = (await res.json()) as { id?: string; status?: string; error?: { code: string } };
  if (res.status !== 202) return `${res.status} ${body.error?.code}`;
  for (;;) {
    const job = (await (
      await t.app.request(`${path}/${body.id}`, { headers: auth(t.user) })
    ).json()) as { status: string; error: { code: string } | null };
    if (job.status !== "queued" && job.status !== "running") {
      return `${job.status} ${job.error?.code ?? ""}`;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("each failing job kind ends every child and leaves no temporary file", async () => {
  const short = readFileSync(makeVideo(join(work, "short.mp4"), { seconds: 1, fps: 8 }));
  const tiny = readFileSync(makeVideo(join(work, "tiny.mp4"), { seconds: 0.5, fps: 8 }));
  const notVideo = new TextEncoder().encode("this is not a video at all".repeat(100));
  const badLatents = encodeNpy({
    dtype: "float32",
    shape: [1, 3, 2, 4, 4],
    data: new Float32Array(3 * 2 * 4 * 4),
  });
  const outcomes: Record<string, string> = {};
  for (const [path, name, bytes, fields] of [
    ["/v1/reconstructions", "short.mp4", short, {}],
    ["/v1/encodings", "short.mp4", short, { mode: "clip" }],
    ["/v1/encodings", "tiny.mp4", tiny, { mode: "whole" }],
    ["/v1/encodings", "junk.mp4", notVideo, {}],
    ["/v1/reconstructions", "junk.mp4", notVideo, {}],
    ["/v1/decodings", "bad.npy", badLatents, {}],
  ] as const) {
    const key = `${path} ${name} ${JSON.stringify(fields)}`;
    outcomes[key] = await settle(path, await post(path, name, bytes, fields));
    await noChildren(key);
    assert.deepEqual(tempFilesUnder(t.config.dataDir), [], key);
  }
  for (const [key, outcome] of Object.entries(outcomes)) {
    assert.doesNotMatch(outcome, /^(succeeded|202)/, `${key} should fail: ${outcome}`);
  }
});

test("a running reconstruction that is canceled ends its ffmpeg processes", async () => {
  const long = readFileSync(makeVideo(join(work, "long.mp4"), { seconds: 20, fps: 8 }));
  const res = await post("/v1/reconstructions", "long.mp4", long, {});
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  for (;;) {
    const job = (await (
      await t.app.request(`/v1/reconstructions/${id}`, { headers: auth(t.user) })
    ).json()) as { status: string };
    if (job.status === "running" && children().length > 0) break;
    assert.equal(job.status === "queued" || job.status === "running", true, job.status);
    await new Promise((r) => setTimeout(r, 20));
  }
  const cancel = await t.app.request(`/v1/reconstructions/${id}/cancel`, {
    method: "POST",
    headers: auth(t.user),
  });
  assert.equal(cancel.status, 200);
  await t.runner.idle();
  await noChildren("a canceled reconstruction");
  assert.deepEqual(tempFilesUnder(t.config.dataDir), []);
});

test("the process host and what it started end with the server, even on SIGKILL", async () => {
  const dir = tempDir("host-kill");
  const script = join(dir, "child.mts");
  const hostModule = join(import.meta.dirname, "../../src/pipeline/media/process-host.ts");
  writeFileSync(
    script,
    `import { hostExec } from ${JSON.stringify(hostModule)};
void hostExec("sleep", ["60"], { timeoutMs: 120_000 });
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: "ignore" });
  try {
    const pid = child.pid as number;
    const started = Date.now() + 15_000;
    let host: number[] = [];
    let sleeps: number[] = [];
    while (Date.now() < started && sleeps.length === 0) {
      await new Promise((r) => setTimeout(r, 100));
      host = childrenOf(pid).filter((c) => /process-worker\.mjs/.test(cmdlineOf(c)));
      sleeps = host.flatMap(childrenOf).filter((c) => /^sleep 60/.test(cmdlineOf(c)));
    }
    assert.equal(host.length, 1, "one process host");
    assert.equal(sleeps.length, 1, "the host runs the command");
    child.kill("SIGKILL");
    const deadline = Date.now() + 10_000;
    while ([...host, ...sleeps].some(alive) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual([...host, ...sleeps].filter(alive).map(cmdlineOf), []);
  } finally {
    child.kill("SIGKILL");
  }
});
