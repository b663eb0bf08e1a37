// Everything that can be checked is checked before the 202, as a 4xx whose message is a sentence
// naming the file and the field: too few frames for the mode (with the real count and the
// requested mode), too long (DIFFUSABLE_MAX_SECONDS), latents of the wrong channels / size / dtype
// or with NaN/Inf, unknown or unsupported fields, ffprobe's pointers and zod's words kept out.
// Plus the one default-model rule and unknown_model on every resource.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { encodeNpy } from "../../src/pipeline/media/npy-file.ts";
import {
  auth,
  fixtureModelsDir,
  MODEL,
  makeVideo,
  openTestApp,
  type TestApp,
  tempDir,
} from "./server-helpers.ts";

const manifest = JSON.parse(readFileSync(join(fixtureModelsDir(), MODEL, "manifest.json"), "utf8"));
const work = tempDir("checks");
let t: TestApp;
before(async () => {
  t = await openTestApp({ DIFFUSABLE_MAX_SECONDS: "5", DIFFUSABLE_DEFAULT_MODEL: MODEL });
});
after(() => t.close());

function post(path: string, file: { name: string; bytes: Uint8Array }, fields = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
  form.append("files", new Blob([file.bytes]), file.name);
  return t.app.request(path, { method: "POST", headers: auth(t.user), body: form });
}

async function errorOf(res: Response, status: number, code: string): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, body.error.message);
  assert.doesNotMatch(body.error.message, /@ 0x[0-9a-f]+|expected \w+, received|Invalid input/);
  return body.error.message;
}

const video = (name: string, opts: Parameters<typeof makeVideo>[1]) => ({
  name,
  bytes: new Uint8Array(readFileSync(makeVideo(join(work, name), opts))),
});

test("too few frames for the mode: 422 before the 202, with the real count and the mode", async () => {
  const need = manifest.frames.default as number;
  const frames = need - 1;
  const short = video("short.mp4", { seconds: frames / 8, fps: 8 });
  for (const [path, fields, mode] of [
    ["/v1/encodings", { mode: "clip" }, "clip"],
    ["/v1/reconstructions", {}, "clip"],
  ] as const) {
    const message = await errorOf(await post(path, short, fields), 422, "too_short");
    assert.match(message, /files\[0\] "short\.mp4"/);
    assert.match(
      message,
      new RegExp(`gives ${frames} frames at 8 fps; ${mode} mode needs at least ${need}`),
    );
  }
  const whole = 1 + manifest.temporal_factor;
  const tiny = video("tiny.mp4", { seconds: (whole - 1) / 8, fps: 8 });
  assert.match(
    await errorOf(await post("/v1/encodings", tiny, { mode: "whole" }), 422, "too_short"),
    new RegExp(`gives ${whole - 1} frames at 8 fps; whole mode needs at least ${whole}`),
  );
  // Enough frames for whole mode but not for a clip: accepted in whole mode.
  assert.equal((await post("/v1/encodings", short, { mode: "whole" })).status, 202);
});

test("a still image (png, jpeg, a png renamed .mp4) is refused before the 202, as a 1-frame mp4 is", async () => {
  const image = (name: string) => {
    const path = join(work, name);
    makeVideo(path, { extra: ["-frames:v", "1", "-update", "1"] });
    return new Uint8Array(readFileSync(path));
  };
  const png = image("still.png");
  const jpeg = image("still.jpg");
  for (const [name, bytes, codec] of [
    ["still.png", png, "png"],
    ["renamed.mp4", png, "png"],
    ["still.jpg", jpeg, "mjpeg"],
  ] as const) {
    for (const [path, fields, mode] of [
      ["/v1/encodings", {}, "clip"],
      ["/v1/encodings", { mode: "whole" }, "whole"],
      ["/v1/reconstructions", {}, "clip"],
    ] as const) {
      const message = await errorOf(await post(path, { name, bytes }, fields), 422, "not_a_video");
      assert.equal(
        message,
        `files[0] "${name}": the file is a still image (${codec}), not a video; ${mode} mode needs at least ${mode === "whole" ? 1 + manifest.temporal_factor : manifest.frames.default} frames.`,
      );
    }
  }
  // The control: a real 1-frame mp4 was already refused before the 202.
  const one = video("one.mp4", { extra: ["-frames:v", "1"] });
  assert.match(
    await errorOf(await post("/v1/encodings", one), 422, "too_short"),
    /gives 1 frames at 8 fps; clip mode needs at least/,
  );
});

test("a raw H.264 stream (no duration, no frame count in any header) is counted before the 202", async () => {
  const raw = (name: string, seconds: number) => {
    const path = join(work, name);
    makeVideo(path, { seconds, extra: ["-c:v", "libx264", "-f", "h264"] });
    return { name, bytes: new Uint8Array(readFileSync(path)) };
  };
  const need = manifest.frames.default as number;
  const short = raw("short.h264", (need - 2) / 8);
  assert.match(
    await errorOf(await post("/v1/encodings", short, { fps: 8 }), 422, "too_short"),
    new RegExp(`gives ${need - 2} frames at 8 fps; clip mode needs at least ${need}`),
  );
  assert.equal((await post("/v1/encodings", raw("long.h264", 3), { fps: 8 })).status, 202);
});

test("longer than DIFFUSABLE_MAX_SECONDS: 422 too_long naming the file and the setting", async () => {
  const long = video("long.mp4", { seconds: 6, fps: 8 });
  for (const path of ["/v1/encodings", "/v1/reconstructions"]) {
    const message = await errorOf(await post(path, long), 422, "too_long");
    assert.match(message, /files\[0\] "long\.mp4".*6\.0 s.*5 s \(DIFFUSABLE_MAX_SECONDS\)/);
  }
  const side = manifest.resolution / manifest.spatial_factor;
  const c = manifest.latent_channels;
  const t100 = 100; // 1 + 4 * 99 frames: far over 5 s at 8 fps
  const npy = encodeNpy({
    dtype: "float32",
    shape: [1, c, t100, side, side],
    data: new Float32Array(c * t100 * side * side),
  });
  assert.match(
    await errorOf(await post("/v1/decodings", { name: "long.npy", bytes: npy }), 422, "too_long"),
    /DIFFUSABLE_MAX_SECONDS/,
  );
});

/** A .npy file of zeros in any dtype descr (encodeNpy writes only the ones the service reads). */
function npyOf(descr: string, shape: number[], itemSize: number): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}), }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);
  const header = `${dict}${" ".repeat(pad % 64)}\n`;
  const n = shape.reduce((a, b) => a * b, 1) * itemSize;
  const out = new Uint8Array(10 + header.length + n);
  out.set([
    0x93,
    ...new TextEncoder().encode("NUMPY"),
    1,
    0,
    header.length & 255,
    header.length >> 8,
  ]);
  out.set(new TextEncoder().encode(header), 10);
  return out;
}

test("latents that do not fit the bundle, or hold NaN/Inf: 400 before the 202", async () => {
  const side = manifest.resolution / manifest.spatial_factor;
  const c = manifest.latent_channels;
  const npy = (shape: number[], fill = 0, dtype: "float32" | "float16" = "float32") => {
    const n = shape.reduce((a, b) => a * b, 1);
    return encodeNpy({ dtype, shape, data: new Float32Array(n).fill(fill) });
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ["channels.npy", npy([1, c * 2, 2, side, side]), new RegExp(`${c * 2} channels.*has ${c}`)],
    ["size.npy", npy([1, c, 2, side + 1, side + 1]), new RegExp(`${side}x${side}`)],
    ["rank.npy", npy([c, 2, side, side]), /shape \(1, C, t, h, w\)/],
    ["nan.npy", npy([1, c, 2, side, side], Number.NaN), /non-finite value \(NaN\)/],
    ["inf.npy", npy([1, c, 2, side, side], Number.POSITIVE_INFINITY, "float16"), /Infinity/],
    [
      "int.npy",
      encodeNpy({
        dtype: "uint8",
        shape: [1, c, 2, side, side],
        data: new Uint8Array(c * 2 * side * side),
      }),
      /uint8; they must be float32 or float16/,
    ],
    // Any other dtype in the same words, whether or not the reader can read it: no list of
    // "supported" descrs that includes <i8 before int64 is refused.
    [
      "f8.npy",
      npyOf("<f8", [1, c, 2, side, side], 8),
      /^[^<]*the latents are float64; they must be float32 or float16\.$/,
    ],
    [
      "i8.npy",
      encodeNpy({
        dtype: "int64",
        shape: [1, c, 2, side, side],
        data: new BigInt64Array(c * 2 * side * side),
      }),
      /^[^<]*the latents are int64; they must be float32 or float16\.$/,
    ],
    [
      "i4.npy",
      npyOf("<i4", [1, c, 2, side, side], 4),
      /the latents are int32; they must be float32 or float16\.$/,
    ],
    // One latent frame is one video frame: fewer than the fixture decodes (no frames.min: 5).
    [
      "one.npy",
      npy([1, c, 1, side, side]),
      /have 1 frame \(shape \(1, 4, 1, 4, 4\)\), which decode to 1 video frame; model tiny-fixture decodes at least 5 \(manifest frames\.min\)\.$/,
    ],
  ];
  for (const [name, bytes, pattern] of cases) {
    const message = await errorOf(await post("/v1/decodings", { name, bytes }), 400, "bad_latents");
    assert.match(message, new RegExp(`files\\[0\\] "${name.replace(".", "\\.")}"`));
    assert.match(message, pattern);
  }
  assert.equal(
    (await post("/v1/decodings", { name: "ok.npy", bytes: npy([1, c, 2, side, side], 0.5) }))
      .status,
    202,
  );
});

test("not a video: the message carries no ffprobe pointer", async () => {
  const bytes = new Uint8Array(readFileSync(makeVideo(join(work, "cut.mp4"), { seconds: 2 })));
  const cut = bytes.subarray(0, 600); // ftyp, then nothing: "moov atom not found"
  const message = await errorOf(
    await post("/v1/encodings", { name: "cut.mp4", bytes: cut }),
    422,
    "truncated",
  );
  assert.match(message, /files\[0\] "cut\.mp4"/);
});

test("unknown and unsupported fields are 400s naming the field; messages are sentences", async () => {
  const clip = video("clip.mp4", { seconds: 2, fps: 8 });
  for (const [path, fields, field] of [
    ["/v1/encodings", { colour: "red" }, "colour"],
    ["/v1/reconstructions", { mode: "whole" }, "mode"],
    ["/v1/reconstructions", { dtype: "float16" }, "dtype"],
  ] as const) {
    const message = await errorOf(await post(path, clip, fields), 400, "invalid_field");
    assert.match(message, new RegExp(`^${field} is not a field of this request`));
  }
  assert.match(
    await errorOf(await post("/v1/encodings", clip, { mode: "sideways" }), 400, "invalid_field"),
    /^mode must be one of "clip", "whole"\.$/,
  );
  const gen = await t.app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(t.user), "content-type": "application/json" },
    body: JSON.stringify({ label: "a", seed: 1.5 }),
  });
  assert.match(await errorOf(gen, 400, "invalid_field"), /^seed must be an integer/);
});

test("one default-model rule and one unknown_model on every resource", async () => {
  const clip = video("clip2.mp4", { seconds: 2, fps: 8 });
  // DIFFUSABLE_DEFAULT_MODEL applies to encodings as it does to generations.
  const res = await post("/v1/encodings", clip);
  assert.equal(res.status, 202);
  assert.equal(((await res.json()) as { model: string }).model, MODEL);
  for (const path of ["/v1/encodings", "/v1/reconstructions"]) {
    const message = await errorOf(await post(path, clip, { model: "nope" }), 404, "unknown_model");
    assert.match(message, new RegExp(`known models: .*${MODEL}`));
  }
  const gen = await t.app.request("/v1/generations", {
    method: "POST",
    headers: { ...auth(t.user), "content-type": "application/json" },
    body: JSON.stringify({ label: "a", model: "nope" }),
  });
  assert.match(await errorOf(gen, 404, "unknown_model"), new RegExp(MODEL));
});

test("?format= on latents: npy or json, anything else a 400", async () => {
  const clip = video("clip3.mp4", { seconds: 2, fps: 8 });
  const { id } = (await (await post("/v1/encodings", clip)).json()) as { id: string };
  await t.runner.idle();
  const get = (q: string) =>
    t.app.request(`/v1/encodings/${id}/items/0/latents${q}`, { headers: auth(t.user) });
  assert.equal((await get("")).headers.get("content-type"), "application/octet-stream");
  assert.match(
    (await get("")).headers.get("content-disposition") ?? "",
    new RegExp(`filename="${id}-0\\.npy"`),
  );
  assert.equal((await get("?format=json")).headers.get("content-type"), "application/json");
  assert.match(
    await errorOf(await get("?format=xml"), 400, "invalid_field"),
    /^format must be one of/,
  );
});
