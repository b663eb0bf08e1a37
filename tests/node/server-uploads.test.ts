// Uploads through a listening server: a real encode (latent shape by the manifest's rule), decode
// and reconstruction; and every bad input answered by a 4xx JSON error naming the problem, with the
// server still serving and no temporary file left in the data dir.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseNpy } from "../../src/pipeline/media/npy-file.ts";
import { JobSchema } from "../../src/server/schemas.ts";
import {
  auth,
  fixtureModelsDir,
  MODEL,
  makeVideo,
  startTestServer,
  type TestServer,
  tempDir,
  tempFilesUnder,
  waitForJob,
} from "./server-helpers.ts";

const MAX_FILES = 3;
const MAX_BYTES = 2 * 1024 * 1024;
let s: TestServer;
const work = tempDir("uploads-inputs");
const manifest = JSON.parse(readFileSync(join(fixtureModelsDir(), MODEL, "manifest.json"), "utf8"));

before(async () => {
  s = await startTestServer({
    DIFFUSABLE_MAX_FILES: String(MAX_FILES),
    DIFFUSABLE_MAX_UPLOAD_BYTES: String(MAX_BYTES),
  });
});
after(() => s.close());

function upload(path: string, files: { name: string; bytes: Uint8Array }[], fields = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries({ model: MODEL, ...fields })) form.append(k, String(v));
  for (const f of files) form.append("files", new Blob([f.bytes]), f.name);
  return fetch(`${s.url}${path}`, { method: "POST", headers: auth(s.user), body: form });
}

const file = (path: string, name = path.split("/").pop() as string) => ({
  name,
  bytes: new Uint8Array(readFileSync(path)),
});

/** The answer is a 4xx JSON error with this code; the server still serves; nothing is left over. */
async function rejected(res: Response, status: number, code: string): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, body.error.message);
  assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
  assert.deepEqual(tempFilesUnder(s.config.dataDir), []);
  const uploads = join(s.config.dataDir, "uploads");
  if (existsSync(uploads)) {
    for (const d of readdirSync(uploads)) assert.ok(!d.startsWith(".tmp-"), d);
  }
  return body.error.message;
}

function y4m(width: number, height: number): Uint8Array {
  // A YUV4MPEG2 header that claims the given size, followed by one (short) frame.
  return new TextEncoder().encode(
    `YUV4MPEG2 W${width} H${height} F8:1 Ip A1:1 C420jpeg\nFRAME\n${"x".repeat(64)}`,
  );
}

test("an encoding of two videos: 202, then latents whose shape follows the manifest's rule", async () => {
  const a = makeVideo(join(work, "a.mp4"), { seconds: 2, size: "64x48" });
  const b = makeVideo(join(work, "b.webm"), { seconds: 1, size: "40x40" });
  const res = await upload("/v1/encodings", [file(a), file(b)], { mode: "whole" });
  assert.equal(res.status, 202);
  const job = (await res.json()) as { id: string; status: string; items: unknown[] };
  assert.equal(job.items.length, 2);
  assert.equal(res.headers.get("location"), `/v1/encodings/${job.id}`);
  const done = (await waitForJob(s.url, `/v1/encodings/${job.id}`, s.user)) as {
    status: string;
    progress: number;
    items: { status: string; sha256: string; metadata: Record<string, unknown>; error: unknown }[];
  };
  assert.equal(done.status, "succeeded", JSON.stringify(done));
  assert.equal(done.progress, 1);
  JobSchema.parse(done); // the answer matches the schema /openapi.json publishes
  for (const [n, item] of done.items.entries()) {
    assert.equal(item.status, "succeeded", JSON.stringify(item.error));
    const npyRes = await fetch(`${s.url}/v1/encodings/${job.id}/items/${n}/latents`, {
      headers: auth(s.user),
    });
    assert.equal(npyRes.status, 200);
    const latents = parseNpy(new Uint8Array(await npyRes.arrayBuffer()));
    const meta = (await (
      await fetch(`${s.url}/v1/encodings/${job.id}/items/${n}/latents?format=json`, {
        headers: auth(s.user),
      })
    ).json()) as { frames: number; latentShape: number[]; bundle: string; bundleSha256: string };
    assert.deepEqual(latents.shape, meta.latentShape);
    const frames = meta.frames;
    assert.equal((frames - 1) % manifest.temporal_factor, 0, `frames ${frames} is 1+4k`);
    const side = manifest.resolution / manifest.spatial_factor;
    assert.deepEqual(latents.shape.slice(-4), [
      manifest.latent_channels,
      1 + (frames - 1) / manifest.temporal_factor,
      side,
      side,
    ]);
    assert.equal(meta.bundle, MODEL);
    assert.match(meta.bundleSha256, /^[0-9a-f]{64}$/);
    assert.match(item.sha256, /^[0-9a-f]{64}$/);
  }
  assert.deepEqual(tempFilesUnder(s.config.dataDir), []);
});

test("decoding latents and reconstructing a video give videos (and PSNR/SSIM per frame)", async () => {
  const v = makeVideo(join(work, "r.mp4"), { seconds: 2, size: "48x48" });
  const enc = (await (await upload("/v1/encodings", [file(v)], { mode: "whole" })).json()) as {
    id: string;
  };
  await waitForJob(s.url, `/v1/encodings/${enc.id}`, s.user);
  const npy = await fetch(`${s.url}/v1/encodings/${enc.id}/items/0/latents`, {
    headers: auth(s.user),
  });
  const latents = new Uint8Array(await npy.arrayBuffer());

  const dec = await upload("/v1/decodings", [{ name: "l.npy", bytes: latents }], { format: "mp4" });
  assert.equal(dec.status, 202);
  const decJob = (await dec.json()) as { id: string };
  const decDone = (await waitForJob(s.url, `/v1/decodings/${decJob.id}`, s.user)) as {
    status: string;
    items: { metadata: { frames: number } }[];
  };
  assert.equal(decDone.status, "succeeded", JSON.stringify(decDone));
  const video = await fetch(`${s.url}/v1/decodings/${decJob.id}/items/0/video`, {
    headers: auth(s.user),
  });
  assert.equal(video.status, 200);
  assert.equal(video.headers.get("content-type"), "video/mp4");
  const bytes = new Uint8Array(await video.arrayBuffer());
  assert.equal(new TextDecoder().decode(bytes.subarray(4, 8)), "ftyp");

  const rec = await upload("/v1/reconstructions", [file(v)], { format: "webm" });
  assert.equal(rec.status, 202);
  const recJob = (await rec.json()) as { id: string };
  const recDone = (await waitForJob(s.url, `/v1/reconstructions/${recJob.id}`, s.user)) as {
    status: string;
    items: { metadata: { frames: number; psnr: number[]; ssim: number[] } }[];
  };
  assert.equal(recDone.status, "succeeded", JSON.stringify(recDone));
  const m = recDone.items[0]?.metadata;
  assert.ok(m && m.frames > 0);
  assert.equal(m.psnr.length, m.frames);
  assert.equal(m.ssim.length, m.frames);
  for (const p of m.psnr) assert.ok(Number.isFinite(p) && p > 0, `psnr ${p}`);
  const floor = manifest.metrics?.psnr_floor_db;
  if (typeof floor === "number") {
    const mean = m.psnr.reduce((a, b) => a + b, 0) / m.psnr.length;
    assert.ok(mean > floor, `mean PSNR ${mean} above the manifest's floor ${floor}`);
  }
  const webm = await fetch(`${s.url}/v1/reconstructions/${recJob.id}/items/0/video`, {
    headers: auth(s.user),
  });
  assert.equal(webm.headers.get("content-type"), "video/webm");
});

test("a 0-byte file is a 400 naming the file", async () => {
  const msg = await rejected(
    await upload("/v1/encodings", [{ name: "empty.mp4", bytes: new Uint8Array() }]),
    400,
    "empty_file",
  );
  assert.match(msg, /empty\.mp4/);
});

test("a text file named .mp4 is a 422 not_a_video", async () => {
  const bytes = new TextEncoder().encode("this is not a video, just some text\n".repeat(20));
  const msg = await rejected(
    await upload("/v1/encodings", [{ name: "notes.mp4", bytes }]),
    422,
    "not_a_video",
  );
  assert.match(msg, /notes\.mp4/);
  assert.ok(!msg.includes(s.config.dataDir), "no server paths in messages");
});

test("a truncated mp4 is a 422 truncated", async () => {
  const full = readFileSync(makeVideo(join(work, "t.mp4"), { seconds: 2 }));
  await rejected(
    await upload("/v1/encodings", [{ name: "cut.mp4", bytes: full.subarray(0, full.length >> 1) }]),
    422,
    "truncated",
  );
});

test("a truncated faststart mp4 fails in the job with a message that holds no server path", async () => {
  // moov first: the probe reads a whole header, the frames run out halfway through the job.
  const path = makeVideo(join(work, "fast.mp4"), {
    seconds: 30,
    extra: ["-movflags", "+faststart"],
  });
  const full = readFileSync(path);
  const cut = { name: "cut.mp4", bytes: new Uint8Array(full.subarray(0, full.length >> 1)) };
  for (const resource of ["encodings", "reconstructions"]) {
    const res = await upload(`/v1/${resource}`, [cut]);
    const created = (await res.json()) as { id: string };
    assert.equal(res.status, 202, JSON.stringify(created));
    const job = (await waitForJob(s.url, `/v1/${resource}/${created.id}`, s.user)) as {
      status: string;
      error: { message: string } | null;
      items: { error: { code: string; message: string } | null }[];
    };
    assert.equal(job.status, "failed", JSON.stringify(job));
    const item = job.items[0]?.error;
    assert.ok(item, JSON.stringify(job));
    const item409 = await fetch(
      `${s.url}/v1/${resource}/${created.id}/items/0/${resource === "encodings" ? "metadata" : "video"}`,
      { headers: auth(s.user) },
    );
    assert.equal(item409.status, 409);
    const messages = [
      item.message,
      job.error?.message ?? "",
      ((await item409.json()) as { error: { message: string } }).error.message,
    ];
    for (const message of messages) {
      assert.ok(!message.includes(s.config.dataDir), message);
      assert.doesNotMatch(message, /uploads|outputs|(^|[\s"'(=:])\/[^\s]*\//, message);
    }
    assert.match(item.message, /cut\.mp4/, "the message names the user's file");
  }
});

test("an audio-only file is a 422 no_video_stream", async () => {
  const path = join(work, "tone.m4a");
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync("ffmpeg", [
    "-v",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    "sine=duration=1",
    path,
  ]);
  assert.equal(r.status, 0);
  await rejected(await upload("/v1/encodings", [file(path)]), 422, "no_video_stream");
});

test("a video whose header claims 1x1 or 10000x10000 frames is a 422 bad_dimensions", async () => {
  for (const [w, h] of [
    [1, 1],
    [10000, 10000],
  ]) {
    const msg = await rejected(
      await upload("/v1/encodings", [{ name: `v${w}.y4m`, bytes: y4m(w as number, h as number) }]),
      422,
      "bad_dimensions",
    );
    assert.match(msg, new RegExp(`${w}x${h}`));
  }
});

test("a bad file among good ones rejects the whole request and stores nothing", async () => {
  const good = file(makeVideo(join(work, "g.mp4"), { seconds: 2 })); // enough frames for a clip
  await rejected(
    await upload("/v1/encodings", [good, { name: "bad.mp4", bytes: new Uint8Array() }]),
    400,
    "empty_file",
  );
});

test("more files than allowed is a 400; more bytes than allowed is a 413", async () => {
  const one = file(makeVideo(join(work, "small.mp4")));
  const msg = await rejected(
    await upload("/v1/encodings", Array(MAX_FILES + 1).fill(one)),
    400,
    "too_many_files",
  );
  assert.match(msg, new RegExp(`at most ${MAX_FILES}`));
  const big = { name: "big.mp4", bytes: new Uint8Array(MAX_BYTES + 1024) };
  await rejected(await upload("/v1/encodings", [big]), 413, "payload_too_large");
});

test("a chunked body (no content-length) is cut off at the byte limit with a 413", async () => {
  const boundary = "XBOUNDARY";
  const head = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.mp4"\r\n\r\n`,
  );
  let sent = 0;
  const chunk = new Uint8Array(256 * 1024);
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === 0) controller.enqueue(head);
      sent += chunk.length;
      if (sent > MAX_BYTES * 2) controller.close();
      else controller.enqueue(chunk);
    },
  });
  const res = await fetch(`${s.url}/v1/encodings`, {
    method: "POST",
    headers: { ...auth(s.user), "content-type": `multipart/form-data; boundary=${boundary}` },
    body,
    duplex: "half",
  } as RequestInit);
  await rejected(res, 413, "payload_too_large");
});

test("an unknown model is a 404 naming it", async () => {
  const one = file(makeVideo(join(work, "m.mp4")));
  const msg = await rejected(
    await upload("/v1/encodings", [one], { model: "nope" }),
    404,
    "unknown_model",
  );
  assert.match(msg, /nope/);
});

test("malformed multipart is a 400", async () => {
  const res = await fetch(`${s.url}/v1/encodings`, {
    method: "POST",
    headers: { ...auth(s.user), "content-type": "multipart/form-data; boundary=B" },
    body: '--B\r\nContent-Disposition: form-data; name="files"; filename="a.mp4"\r\n\r\nabc',
  });
  await rejected(res, 400, "malformed_multipart");
});

test("latents that are not a .npy are a 400 bad_latents", async () => {
  const msg = await rejected(
    await upload("/v1/decodings", [{ name: "x.npy", bytes: new Uint8Array([1, 2, 3, 4]) }]),
    400,
    "bad_latents",
  );
  assert.match(msg, /x\.npy/);
});

test("missing or wrong API key on an upload is a 401", async () => {
  const form = new FormData();
  form.append("model", MODEL);
  const res = await fetch(`${s.url}/v1/encodings`, { method: "POST", body: form });
  await rejected(res, 401, "missing_api_key");
  const wrong = await fetch(`${s.url}/v1/encodings`, {
    method: "POST",
    body: form,
    headers: auth("dfs_nope"),
  });
  await rejected(wrong, 401, "invalid_api_key");
});
