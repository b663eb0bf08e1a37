// The inputs a generation can start from (generate.ts GenerateCondition), encoded to the latents
// the sampler takes as context: an image (one latent frame: the causal encoder maps one frame to
// one latent frame), a video (encoded whole, causally, as an encoding in whole mode is, and its
// frames as the encoder read them: an extension's first context is cut from them), or
// latents saved by an encoding (.npy (N, C, t, h, w); clip mode's N clips are independent, so
// the last clip is the sequence continued).

import { encodeFile } from "../autoencoder/encode.ts";
import { DEFAULT_TIMEOUT_MS, tensorOf, video } from "../autoencoder/model-io.ts";
import type { Bundle } from "../bundle.ts";
import { readNpy } from "../media/npy-file.ts";
import { framesToVideo } from "../media/tensor.ts";
import { decodeFrames } from "../media/video.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import type { SourceLatents } from "./generate.ts";

export const SOURCE_KINDS = ["image", "video", "latents"] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

/** The image's first frame, resized and centre-cropped as the bundle's training data were, as
 * the encoder's latent (1, C, 1, h, w). */
export async function encodeImage(
  rt: ModelRuntime,
  b: Bundle,
  path: string,
  signal?: AbortSignal,
): Promise<SourceLatents> {
  const s = b.manifest.resolution;
  let frame: Uint8Array | undefined;
  for await (const f of decodeFrames(path, {
    size: s,
    maxFrames: 1,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    ...(signal ? { signal } : {}),
  })) {
    frame = f;
    break;
  }
  if (!frame) throw new PipelineError("not_an_image", "the image gives no frame", 422);
  const out = await rt.run(
    b,
    "encoder",
    { video: video(framesToVideo([frame], s, s), [1, 3, 1, s, s]) },
    signal,
  );
  const latent = tensorOf(out, "latent");
  return { latents: latent.data as Float32Array, frames: latent.dims[2] ?? 1 };
}

/** The latents of a stored input of this kind (see the file's head). */
export async function loadSource(
  rt: ModelRuntime,
  b: Bundle,
  kind: SourceKind,
  path: string,
  signal?: AbortSignal,
): Promise<SourceLatents> {
  if (kind === "image") return encodeImage(rt, b, path, signal);
  if (kind === "video") {
    const { latents } = await encodeFile(rt, b.name, path, {
      mode: "whole",
      dtype: "float32",
      ...(signal ? { signal } : {}),
    });
    const frames = latents.shape[2] ?? 0;
    // The frames those latents encode (whole mode uses the first 1 + tf (t - 1)), read as the
    // encoder read them: an extension's first context is cut from them (generate/extend.ts).
    const used = 1 + b.manifest.temporal_factor * (frames - 1);
    const pixels: Uint8Array[] = [];
    for await (const f of decodeFrames(path, {
      fps: b.manifest.fps,
      size: b.manifest.resolution,
      maxFrames: used,
      timeoutMs: DEFAULT_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
    })) {
      pixels.push(f);
    }
    if (pixels.length !== used) {
      throw new PipelineError(
        "bad_input",
        `the video gave ${pixels.length} frames on a second read, ${used} on the first`,
        422,
      );
    }
    return { latents: latents.data as Float32Array, frames, pixels };
  }
  const array = await readNpy(path);
  const [n = 0, c = 0, t = 0, h = 0, w = 0] = array.shape;
  if ((array.dtype !== "float32" && array.dtype !== "float16") || array.shape.length !== 5) {
    throw new PipelineError("bad_latents", "the input latents are not (N, C, t, h, w) floats", 422);
  }
  const per = c * t * h * w;
  return { latents: array.data.slice((n - 1) * per, n * per), frames: t };
}
