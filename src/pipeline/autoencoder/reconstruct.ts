// Reconstruction: video -> latents -> video in clip mode, with PSNR and SSIM of every frame.

import type { VideoFormat } from "../media/output-formats.ts";
import { psnr, ssim, videoToFrames, writeFrames } from "../media/tensor.ts";
import { decodeFrames, encodeFrames } from "../media/video.ts";
import type { ModelRuntime } from "../runtime.ts";
import { checkFps, DEFAULT_TIMEOUT_MS, groups, tensorOf, tooShort, video } from "./model-io.ts";

/**
 * video -> latents -> video in clip mode (the way the model was trained), writing the
 * reconstruction to outPath and returning PSNR and SSIM of every frame against the decoded input
 * (both at the bundle's size, on the [0, 1] scale).
 */
export async function reconstructFile(
  rt: ModelRuntime,
  bundleName: string,
  inputPath: string,
  opts: {
    format: VideoFormat;
    outPath: string;
    fps?: number;
    signal?: AbortSignal;
    timeoutMs?: number;
  },
): Promise<{ frames: number; psnr: number[]; ssim: number[] }> {
  const b = rt.loaded(bundleName);
  const m = b.manifest;
  const fps = opts.fps ?? m.fps;
  checkFps(fps);
  const s = m.resolution;
  const f = m.frames.default;
  const source = decodeFrames(inputPath, {
    fps,
    size: s,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let framesRead = 0; // the real count, for the too_short message
  async function* counted() {
    for await (const frame of source) {
      framesRead++;
      yield frame;
    }
  }
  const psnrs: number[] = [];
  const ssims: number[] = [];
  async function* reconstructed() {
    for await (const clip of groups(counted(), f)) {
      const data = new Float32Array(3 * f * s * s);
      writeFrames(data, 0, clip, s, s);
      const enc = await rt.run(b, "encoder", { video: video(data, [1, 3, f, s, s]) }, opts.signal);
      const dec = await rt.run(b, "decoder", { latent: tensorOf(enc, "latent") }, opts.signal);
      const out = tensorOf(dec, "video");
      const frames = videoToFrames(out.data as Float32Array, out.dims);
      frames.forEach((frame, i) => {
        const original = clip[i] as Uint8Array;
        psnrs.push(psnr(original, frame));
        ssims.push(ssim(original, frame, s, s));
      });
      yield* frames;
    }
    if (psnrs.length === 0) throw tooShort(framesRead, fps, f, "clip");
  }
  const { frames } = await encodeFrames(reconstructed(), {
    width: s,
    height: s,
    fps,
    format: opts.format,
    outPath: opts.outPath,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { frames, psnr: psnrs, ssim: ssims };
}
