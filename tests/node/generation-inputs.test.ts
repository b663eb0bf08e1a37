// Image-to-video and video extension through POST /v1/generations (app.request(), real ffmpeg and
// onnxruntime): frame 0 of an image-to-video output is the bundle's own reconstruction of the
// image (PSNR >= 40 dB in float), the same seed and input give the same bytes, bad inputs are
// 4xx before the 202 with nothing kept, an extension continues its input (the whole output
// begins with the input's latents; continuation and whole agree), an encoding's latents can be
// continued, extending an extension's output again works, and an extension's windows are the
// denoiser's training windows (manifest conditioning: never more than window_latents latent
// frames; longer extensions chain windows, deterministically). The shipped small-se bundle (a
// context-trained denoiser: "trained" mode) and the tiny fixture (none: "replace" mode).

import assert from "node:assert/strict";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { tensorOf, video } from "../../src/pipeline/autoencoder/model-io.ts";
import { denoiserVelocity } from "../../src/pipeline/generate/denoiser.ts";
import {
  conditioningOf,
  extendFrames,
  extensionWindows,
} from "../../src/pipeline/generate/extend.ts";
import type { VelocityFn } from "../../src/pipeline/generate/sampler.ts";
import { type NpyArray, parseNpy } from "../../src/pipeline/media/npy-file.ts";
import { framesToVideo } from "../../src/pipeline/media/tensor.ts";
import { decodeFrames, probeVideo } from "../../src/pipeline/media/video.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { ffmpegMake } from "./media.ts";
import { REPO_ROOT } from "./python.ts";
import {
  auth,
  fixtureModelsDir,
  MODEL,
  makeVideo,
  openTestApp,
  type TestApp,
  tempDir,
} from "./server-helpers.ts";

const SHIPPED = "small-se";
let t: TestApp;
let rt: ModelRuntime;
const work = tempDir("gen-inputs");
const models = join(work, "models");

before(async () => {
  cpSync(join(fixtureModelsDir(), MODEL), join(models, MODEL), { recursive: true });
  cpSync(join(REPO_ROOT, "models", SHIPPED), join(models, SHIPPED), { recursive: true });
  t = await openTestApp({ DIFFUSABLE_MODELS_DIR: models });
  rt = await ModelRuntime.open({ modelsDir: models, threads: 1 });
});
after(async () => {
  await t?.close();
  await rt?.close();
});

/** A picture no dataset here holds: ffmpeg's mandelbrot, 96x72 (cropped to the bundle's square). */
const image = ffmpegMake([
  "-f",
  "lavfi",
  "-i",
  "mandelbrot=size=96x72:end_pts=1",
  "-frames:v",
  "1",
  join(work, "picture.png"),
]);
const otherImage = ffmpegMake([
  "-f",
  "lavfi",
  "-i",
  "testsrc2=size=64x64:rate=1:duration=1",
  "-frames:v",
  "1",
  join(work, "other.png"),
]);
const clip = makeVideo(join(work, "clip.mp4"), { seconds: 17 / 8, size: "80x64" });

type Gen = {
  id: string;
  status: string;
  options: Record<string, unknown>;
  error: { code: string; message: string } | null;
  outputs: { index: number; sha256: string; url: string }[];
};

function form(fields: Record<string, string>, files: Record<string, string | Uint8Array> = {}) {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (const [field, file] of Object.entries(files)) {
    const bytes = typeof file === "string" ? readBytes(file) : file;
    const name = typeof file === "string" ? (file.split("/").pop() as string) : `${field}.bin`;
    f.append(field, new Blob([bytes]), name);
  }
  return f;
}

function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

const postForm = (body: FormData, headers: Record<string, string> = {}) =>
  t.app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(t.user), prefer: "wait=60", ...headers },
    body,
  });

const postJson = (body: unknown) =>
  t.app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(t.user), prefer: "wait=60", "content-type": "application/json" },
    body: JSON.stringify(body),
  });

async function finished(res: Response): Promise<Gen> {
  const g = (await res.json()) as Gen;
  assert.ok([200, 202].includes(res.status), JSON.stringify(g));
  for (let i = 0; i < 600 && ["queued", "running"].includes(g.status); i++) {
    await new Promise((r) => setTimeout(r, 100));
    const again = await t.app.request(`/v1/generations/${g.id}`, { headers: auth(t.user) });
    Object.assign(g, await again.json());
  }
  assert.equal(g.status, "succeeded", JSON.stringify(g.error));
  return g;
}

async function waitGen(id: string): Promise<Gen> {
  const res = await t.app.request(`/v1/generations/${id}`, {
    headers: { ...auth(t.user), prefer: "wait=60" },
  });
  return (await res.json()) as Gen;
}

async function content(g: Gen, index = 0): Promise<Uint8Array> {
  const res = await t.app.request(g.outputs[index]?.url as string, { headers: auth(t.user) });
  assert.equal(res.status, 200);
  return new Uint8Array(await res.arrayBuffer());
}

const npy = async (g: Gen): Promise<NpyArray & { data: Float32Array }> =>
  parseNpy(await content(g)) as NpyArray & { data: Float32Array };

/** Latent frames [from, to) of a (1, C, t, h, w) array. */
function frames(a: { shape: number[]; data: Float32Array }, from: number, to: number) {
  const [, c = 0, tt = 0, h = 0, w = 0] = a.shape;
  const hw = h * w;
  const out = new Float32Array(c * (to - from) * hw);
  for (let ch = 0; ch < c; ch++) {
    out.set(a.data.subarray((ch * tt + from) * hw, (ch * tt + to) * hw), ch * (to - from) * hw);
  }
  return out;
}

async function decode(model: string, latents: Float32Array, shape: number[]) {
  const out = await rt.run(rt.loaded(model), "decoder", { latent: video(latents, shape) });
  return tensorOf(out, "video");
}

/** PSNR in dB of frame `i` of two (1, 3, T, H, W) videos in [-1, 1], on the [0, 1] scale. */
function psnrFloat(
  a: { data: unknown; dims: readonly number[] },
  b: { data: unknown; dims: readonly number[] },
  i = 0,
): number {
  const [, , ta = 0, h = 0, w = 0] = a.dims;
  const tb = b.dims[2] ?? 0;
  const hw = h * w;
  let se = 0;
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < hw; p++) {
      const x = (a.data as Float32Array)[(c * ta + i) * hw + p] as number;
      const y = (b.data as Float32Array)[(c * tb + i) * hw + p] as number;
      se += ((x - y) / 2) ** 2;
    }
  }
  return 10 * Math.log10(1 / Math.max(se / (3 * hw), 1e-10));
}

test("image-to-video: frame 0 is the bundle's reconstruction of the image (PSNR >= 40 dB, float); the rest moves", async (c) => {
  const g = await finished(
    await postForm(
      form(
        {
          model: SHIPPED,
          label: "bouncing_balls",
          seed: "5",
          steps: "3",
          frames: "9",
          format: "npy",
        },
        { image },
      ),
    ),
  );
  assert.equal((g.options.input as { kind: string }).kind, "image");
  assert.equal((g.options.input as { contextMode: string }).contextMode, "trained");
  const latents = await npy(g);
  assert.deepEqual(latents.shape, [1, 16, 3, 8, 8]);
  const generated = await decode(SHIPPED, latents.data, latents.shape);
  // The bundle's own encode -> decode of the image, resized and cropped as the service does.
  const s = 64;
  let frame: Uint8Array | undefined;
  for await (const f of decodeFrames(image, { size: s, maxFrames: 1, timeoutMs: 30_000 }))
    frame = f;
  const b = rt.loaded(SHIPPED);
  const enc = tensorOf(
    await rt.run(b, "encoder", {
      video: video(framesToVideo([frame as Uint8Array], s, s), [1, 3, 1, s, s]),
    }),
    "latent",
  );
  const recon = await decode(SHIPPED, enc.data as Float32Array, [...enc.dims]);
  const db = psnrFloat(generated, recon, 0);
  c.diagnostic(`frame 0 against the reconstruction: ${db.toFixed(1)} dB`);
  assert.ok(db >= 40, `${db} dB`);
  // Later frames are generated: not copies of frame 0.
  const last = (generated.dims[2] ?? 1) - 1;
  const moved = psnrFloat(
    { data: (generated.data as Float32Array).slice(), dims: generated.dims },
    { data: frameOnly(generated, last), dims: [1, 3, 1, s, s] },
  );
  assert.ok(moved < 40, `frame ${last} is frame 0 again (${moved} dB)`);
});

/** Frame i of a (1, 3, T, H, W) video as (1, 3, 1, H, W). */
function frameOnly(v: { data: unknown; dims: readonly number[] }, i: number): Float32Array {
  const [, , tt = 0, h = 0, w = 0] = v.dims;
  const hw = h * w;
  const out = new Float32Array(3 * hw);
  for (let c = 0; c < 3; c++) {
    out.set((v.data as Float32Array).subarray((c * tt + i) * hw, (c * tt + i + 1) * hw), c * hw);
  }
  return out;
}

test("image-to-video as mp4: a playable video of the requested frames; same seed and image, same bytes", async () => {
  const fields = { model: SHIPPED, label: "3", seed: "9", steps: "2", frames: "9" };
  const a = await finished(await postForm(form(fields, { image })));
  const b = await finished(await postForm(form(fields, { image })));
  assert.equal(a.outputs[0]?.sha256, b.outputs[0]?.sha256);
  const file = join(work, "i2v.mp4");
  writeFileSync(file, await content(a));
  const info = await probeVideo(file);
  assert.deepEqual([info.width, info.height, info.frames], [64, 64, 9]);
  const other = await finished(await postForm(form({ ...fields, seed: "10" }, { image })));
  assert.notEqual(other.outputs[0]?.sha256, a.outputs[0]?.sha256);
});

test("the tiny fixture (a denoiser without context) samples image-to-video in replace mode", async () => {
  const g = await finished(
    await postForm(
      form({ model: MODEL, label: "a", steps: "2", frames: "5", format: "npy" }, { image }),
    ),
  );
  assert.equal((g.options.input as { contextMode: string }).contextMode, "replace");
  const latents = await npy(g);
  const b = rt.loaded(MODEL);
  const s = b.manifest.resolution;
  let frame: Uint8Array | undefined;
  for await (const f of decodeFrames(image, { size: s, maxFrames: 1, timeoutMs: 30_000 }))
    frame = f;
  const enc = tensorOf(
    await rt.run(b, "encoder", {
      video: video(framesToVideo([frame as Uint8Array], s, s), [1, 3, 1, s, s]),
    }),
    "latent",
  );
  assert.deepEqual([...frames(latents, 0, 1)], [...(enc.data as Float32Array)]);
});

test("a one-frame video is an image; the generation's events stream ends with done", async () => {
  const oneFrame = ffmpegMake([
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=64x48:rate=8:duration=1",
    "-frames:v",
    "1",
    "-pix_fmt",
    "yuv420p",
    join(work, "one.mp4"),
  ]);
  const res = await t.app.request("/v1/generations", {
    method: "POST",
    headers: auth(t.user),
    body: form(
      { model: MODEL, label: "b", steps: "2", frames: "5", format: "npy" },
      { image: oneFrame },
    ),
  });
  assert.equal(res.status, 202);
  const { id } = (await res.json()) as Gen;
  const events = await t.app.request(`/v1/generations/${id}/events`, { headers: auth(t.user) });
  const text = await events.text();
  assert.match(text, /event: done\ndata: .*"status":"succeeded"/);
  assert.match(text, /"kind":"image"/);
});

test("extension: continuation and whole agree, and whole begins with the input's latents", async () => {
  const fields = { model: SHIPPED, label: "0", seed: "4", steps: "2", frames: "8", format: "npy" };
  const cont = await finished(await postForm(form(fields, { video: clip })));
  const whole = await finished(
    await postForm(form({ ...fields, output: "whole" }, { video: clip })),
  );
  const a = await npy(cont);
  const w = await npy(whole);
  assert.deepEqual(a.shape, [1, 16, 2, 8, 8]);
  assert.deepEqual(w.shape, [1, 16, 7, 8, 8]); // 17 frames: 5 latent frames, then 2 new
  assert.deepEqual([...frames(w, 5, 7)], [...a.data]);
  // The input's latents: an encoding of the clip in whole mode.
  const enc = await t.app.request("/v1/encodings", {
    method: "POST",
    headers: { ...auth(t.user), prefer: "wait=60" },
    body: form({ model: SHIPPED, mode: "whole" }, { files: clip }),
  });
  const job = (await enc.json()) as {
    id: string;
    status: string;
    items: { urls: { latents: string } }[];
  };
  assert.equal(job.status, "succeeded");
  const latRes = await t.app.request(job.items[0]?.urls.latents as string, {
    headers: auth(t.user),
  });
  const encoded = parseNpy(new Uint8Array(await latRes.arrayBuffer())) as NpyArray & {
    data: Float32Array;
  };
  assert.deepEqual([...frames(w, 0, 5)], [...encoded.data]);
  // The same continuation from the encoding's latents (JSON, no upload).
  const ref = await finished(
    await postJson({ ...fields, label: 0, seed: 4, steps: 2, frames: 8, encoding: job.id }),
  );
  // Latents are continued from their decoded frames (the bundle's reconstruction of the clip),
  // an upload from its own frames: the same shape, not the same bytes.
  assert.deepEqual((await npy(ref)).shape, [1, 16, 2, 8, 8]);
  const again = await finished(
    await postJson({ ...fields, label: 0, seed: 4, steps: 2, frames: 8, encoding: job.id }),
  );
  assert.equal(again.outputs[0]?.sha256, ref.outputs[0]?.sha256);
  assert.equal((ref.options.input as { source: string }).source, `${job.id}/items/0`);
  // Another model's latents, or an item the encoding does not have: refused naming the field.
  const other = await postJson({ model: MODEL, label: "a", frames: 4, encoding: job.id });
  assert.equal(other.status, 400);
  assert.match(
    ((await other.json()) as { error: { message: string } }).error.message,
    /^encoding: .* holds latents of model small-se; this generation uses model tiny-fixture\.$/,
  );
  const noItem = await postJson({
    ...fields,
    label: 0,
    seed: 4,
    steps: 2,
    frames: 8,
    encoding: job.id,
    item: 3,
  });
  assert.equal(noItem.status, 404);
});

test("extension as video: continuation has the new frames, whole the input's and them; extending the whole again continues it", async () => {
  const fields = { model: SHIPPED, label: "0", seed: "4", steps: "2", frames: "8" };
  const cont = await finished(await postForm(form(fields, { video: clip })));
  const whole = await finished(
    await postForm(form({ ...fields, output: "whole" }, { video: clip })),
  );
  const contFile = join(work, "cont.mp4");
  const wholeFile = join(work, "whole.mp4");
  writeFileSync(contFile, await content(cont));
  writeFileSync(wholeFile, await content(whole));
  assert.equal((await probeVideo(contFile)).frames, 8);
  assert.equal((await probeVideo(wholeFile)).frames, 25);
  const again = await finished(
    await postForm(
      form({ ...fields, seed: "5", output: "whole", format: "npy" }, { video: wholeFile }),
    ),
  );
  const w2 = await npy(again);
  assert.deepEqual(w2.shape, [1, 16, 9, 8, 8]); // 25 frames: 7 latent frames, then 2 new
});

test("extension windows never exceed window_latents latent frames; a chained extension (F > 4 (T - k_ext)) works and is deterministic", async () => {
  const b = rt.loaded(SHIPPED);
  const cond = conditioningOf(b.manifest);
  assert.deepEqual(cond, {
    windowFrames: 17,
    windowLatents: 5,
    maxContextLatents: 4,
    extensionContextLatents: 2,
  });
  if (!cond) return;
  // The plan: every window is T = 5 latent frames, 1..4 given, the new ones add up to g.
  for (let g = 1; g <= 16; g++) {
    for (const inputLatents of [1, 2, 3, 10]) {
      const ws = extensionWindows(cond, g, inputLatents);
      for (const [i, w] of ws.entries()) {
        assert.equal(w.context + w.generated, 5);
        assert.ok(w.context >= 1 && w.context <= 4);
        assert.ok(w.kept >= 1 && w.kept <= w.generated);
        if (i < ws.length - 1) assert.equal(w.kept, w.generated);
        if (i > 0) assert.ok(w.context >= 2);
      }
      assert.equal(
        ws.reduce((a, w) => a + w.kept, 0),
        g,
      );
      if (g <= 3 && inputLatents >= 5 - g)
        assert.deepEqual(ws, [{ context: 5 - g, generated: g, kept: g }]);
    }
  }
  assert.deepEqual(extensionWindows(cond, 8), [
    { context: 2, generated: 3, kept: 3 },
    { context: 2, generated: 3, kept: 3 },
    { context: 3, generated: 2, kept: 2 },
  ]);
  // At the denoiser: 20 new frames (5 latent frames) are two windows of 5 latent frames, 2 then
  // 3 given; the same seed and input give the same frames.
  const input: Uint8Array[] = [];
  for await (const f of decodeFrames(clip, { fps: 8, size: 64, timeoutMs: 30_000 })) input.push(f);
  assert.equal(input.length, 17);
  const base = denoiserVelocity(rt, b);
  const seen: string[] = [];
  const spy: VelocityFn = (x, dims, t, labels, context) => {
    seen.push(`${dims[2]}:${context?.[0]}`);
    return base(x, dims, t, labels, context);
  };
  const req = {
    input,
    newLatents: 5,
    n: 2,
    seed: 3,
    label: 0,
    steps: 2,
    guidance: 1,
    nullClass: b.manifest.null_class as number,
    method: "euler" as const,
    contextMode: "trained" as const,
    model: spy,
  };
  const a = await extendFrames(rt, b, req);
  assert.deepEqual(seen, ["5:2", "5:2", "5:3", "5:3"]);
  assert.deepEqual(a.windows, [
    { context: 2, generated: 3, kept: 3 },
    { context: 3, generated: 2, kept: 2 },
  ]);
  assert.deepEqual(
    a.frames.map((f) => f.length),
    [20, 20],
  );
  const again = await extendFrames(rt, b, { ...req, model: base });
  assert.deepEqual(again.frames, a.frames);
  assert.notDeepEqual(a.frames[0], a.frames[1]); // video k takes slice k of each window's noise
  // Over HTTP: the same request twice gives the same bytes; whole is the input's 17 frames and 20.
  const fields = { model: SHIPPED, label: "0", seed: "6", steps: "2", frames: "20" };
  const one = await finished(await postForm(form(fields, { video: clip })));
  const two = await finished(await postForm(form(fields, { video: clip })));
  assert.equal(one.outputs[0]?.sha256, two.outputs[0]?.sha256);
  const file = join(work, "chained.mp4");
  writeFileSync(file, await content(one));
  assert.equal((await probeVideo(file)).frames, 20);
  const whole = await finished(
    await postForm(form({ ...fields, output: "whole", format: "npy" }, { video: clip })),
  );
  assert.deepEqual((await npy(whole)).shape, [1, 16, 10, 8, 8]);
});

test("bad inputs are 4xx before the 202, naming the field, with nothing kept", async () => {
  const text = new TextEncoder().encode("not a picture at all");
  const cases: [string, FormData, number, RegExp][] = [
    [
      "an image that is not one",
      form({ label: "a", model: MODEL }, { image: text }),
      422,
      /^image "image\.bin": /,
    ],
    [
      "a clip as the image",
      form({ label: "a", model: MODEL }, { image: clip }),
      422,
      /^image "clip\.mp4": .*17 frames/,
    ],
    [
      "an empty image",
      form({ label: "a", model: MODEL }, { image: new Uint8Array(0) }),
      400,
      /^image "image\.bin": the file is empty/,
    ],
    [
      "a picture as the video",
      form({ label: "a", model: MODEL }, { video: image }),
      422,
      /^video "picture\.png": /,
    ],
    [
      "both an image and a video",
      form({ label: "a", model: MODEL }, { image, video: clip }),
      400,
      /^image and video: give one file/,
    ],
    [
      "output with an image",
      form({ label: "a", model: MODEL, output: "whole" }, { image }),
      400,
      /^output: /,
    ],
    [
      "an extension longer than the bundle allows",
      form({ label: "0", model: SHIPPED, frames: "68" }, { video: clip }),
      400,
      /^frames must be at most 64 for an extension /,
    ],
    [
      "extension frames off the rule",
      form({ label: "0", model: SHIPPED, frames: "9" }, { video: clip }),
      400,
      /^frames must be a positive multiple of 4/,
    ],
    [
      "image-to-video of one frame",
      form({ label: "0", model: SHIPPED, frames: "1" }, { image }),
      400,
      /^frames must be at least 5/,
    ],
    ["an unknown label", form({ label: "zebra", model: MODEL }, { image }), 400, /^label /],
    ["a bad seed", form({ label: "a", model: MODEL, seed: "x" }, { image }), 400, /^seed /],
    [
      "the files field",
      form({ label: "a", model: MODEL }, { files: image }),
      400,
      /^files: unexpected file field/,
    ],
    [
      "an unknown encoding",
      form({ label: "a", model: MODEL, encoding: "enc_nope" }),
      404,
      /^encoding: /,
    ],
    [
      "item without encoding",
      form({ label: "a", model: MODEL, item: "1" }, { image }),
      400,
      /^item: /,
    ],
    ["an unknown model", form({ label: "a", model: "nope" }, { image }), 404, /^model: /],
  ];
  for (const [name, body, status, message] of cases) {
    const res = await postForm(body);
    const json = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, status, `${name}: ${JSON.stringify(json)}`);
    assert.match(json.error.message, message, name);
    assert.ok(!json.error.message.includes(t.config.dataDir), `${name}: a server path`);
  }
  for (const dir of ["uploads", "generations"]) {
    const path = join(t.config.dataDir, dir);
    const left = existsSync(path) ? readdirSync(path) : [];
    // Only finished generations of the tests above keep folders; none of these requests did.
    const listed = await t.app.request("/v1/generations?limit=500", { headers: auth(t.user) });
    const ids = new Set(((await listed.json()) as { jobs: Gen[] }).jobs.map((g) => g.id));
    assert.deepEqual(
      left.filter((d) => !ids.has(d)),
      [],
      `${dir}: ${left}`,
    );
  }
});

test("Idempotency-Key with an upload: the same image replays, another image is refused", async () => {
  const fields = { model: MODEL, label: "a", steps: "1", frames: "5", format: "npy" };
  const headers = { "idempotency-key": "i2v-1" };
  const a = await postForm(form(fields, { image }), headers);
  const first = (await a.json()) as Gen;
  const b = await postForm(form(fields, { image }), headers);
  assert.equal(b.headers.get("idempotent-replayed"), "true");
  assert.equal(((await b.json()) as Gen).id, first.id);
  const other = await postForm(form(fields, { image: otherImage }), headers);
  assert.equal(other.status, 422);
  assert.equal(
    ((await other.json()) as { error: { code: string } }).error.code,
    "idempotency_key_reused",
  );
  assert.equal((await waitGen(first.id)).status, "succeeded");
});
