// The run functions of the autoencoder's kinds of job (encode, decode, reconstruct; their entries
// are in job-kinds.ts): each item is one uploaded file, run through the pipeline with its outputs
// written atomically into the job's folder (datadir.ts). `runItem` is also what the CLI runs, so
// HTTP and CLI produce the same bytes.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { decodeLatents } from "../autoencoder/decode.ts";
import { type EncodeMode, encodeFile } from "../autoencoder/encode.ts";
import { reconstructFile } from "../autoencoder/reconstruct.ts";
import type { FrameSize } from "../autoencoder/tiling.ts";
import { readNpy, writeNpy } from "../media/npy-file.ts";
import type { VideoFormat } from "../media/output-formats.ts";
import { PipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";
import { produceAtomic, sha256File, writeAtomic } from "./datadir.ts";
import { type ItemResult, perItem, type RunJob } from "./kind-contract.ts";

export type AutoencoderKind = "encode" | "decode" | "reconstruct";

/** Options of each job kind, as validated by the HTTP layer (and the CLI). */
export interface EncodeJobOptions {
  mode: EncodeMode;
  fps?: number;
  dtype: "float32" | "float16";
  /** Absent in jobs made before the field: bundle. */
  size?: FrameSize;
}
export interface VideoJobOptions {
  format: VideoFormat;
  fps?: number;
  /** Reconstructions only; absent: bundle. */
  size?: FrameSize;
}
export type JobOptions = EncodeJobOptions | VideoJobOptions;

export interface RunItemArgs {
  runtime: ModelRuntime;
  kind: AutoencoderKind;
  model: string;
  options: JobOptions;
  inputPath: string;
  sourceName: string;
  /** Directory for the outputs; `baseName` + extension names them. */
  outDir: string;
  baseName: string;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

/** Pixels along a latent axis (3: height, 4: width) of an (N, C, t, h, w) array. */
function latentSide(latents: { shape: number[] }, axis: number, spatialFactor: number): number {
  return (latents.shape.at(axis - 5) ?? 0) * spatialFactor;
}

/** Runs one item through the pipeline and writes its outputs atomically into outDir. */
export async function runItem(args: RunItemArgs): Promise<ItemResult> {
  const { runtime, model, inputPath, outDir, baseName, signal } = args;
  await mkdir(outDir, { recursive: true });
  if (args.kind === "encode") {
    const options = args.options as EncodeJobOptions;
    const result = await encodeFile(runtime, model, inputPath, {
      mode: options.mode,
      dtype: options.dtype,
      ...(options.fps !== undefined ? { fps: options.fps } : {}),
      ...(options.size !== undefined ? { size: options.size } : {}),
      ...(signal ? { signal } : {}),
      onProgress: ({ framesDone, framesTotal }) => {
        if (framesTotal) args.onProgress?.(Math.min(1, framesDone / framesTotal));
      },
    });
    const metadata = { ...result.meta, source: args.sourceName };
    const latentsPath = join(outDir, `${baseName}.npy`);
    const metadataPath = join(outDir, `${baseName}.json`);
    // writeNpy writes the header and then the latents' own memory: no copy of the whole
    await produceAtomic(latentsPath, outDir, baseName, "npy", (tmp) =>
      writeNpy(tmp, result.latents),
    );
    await writeAtomic(
      metadataPath,
      outDir,
      baseName,
      "json",
      new TextEncoder().encode(`${JSON.stringify(metadata, null, 2)}\n`),
    );
    return {
      outputs: { latents: latentsPath, metadata: metadataPath },
      // read back in chunks: hashing the whole in one call held the event loop (0.3 s for the
      // 147 MB of a 10-minute encoding at fps 240)
      sha256: await sha256File(latentsPath),
      metadata,
    };
  }
  const options = args.options as VideoJobOptions;
  const videoPath = join(outDir, `${baseName}.${options.format}`);
  if (args.kind === "decode") {
    const sf = runtime.loaded(model).manifest.spatial_factor;
    const latents = await readNpy(inputPath).catch((err: Error) => {
      throw new PipelineError("bad_latents", `${args.sourceName}: ${err.message}`, 400);
    });
    const result = await produceAtomic(videoPath, outDir, baseName, options.format, (tmp) =>
      decodeLatents(runtime, model, latents, {
        format: options.format,
        outPath: tmp,
        ...(signal ? { signal } : {}),
      }),
    );
    return {
      outputs: { video: videoPath },
      sha256: await sha256File(videoPath),
      metadata: {
        source: args.sourceName,
        frames: result.frames,
        format: options.format,
        // Decodings take latents of the bundle's size only (input-checks.ts checkLatentsInput).
        size: {
          mode: "bundle",
          width: latentSide(latents, 4, sf),
          height: latentSide(latents, 3, sf),
        },
      },
    };
  }
  const result = await produceAtomic(videoPath, outDir, baseName, options.format, (tmp) =>
    reconstructFile(runtime, model, inputPath, {
      format: options.format,
      outPath: tmp,
      ...(options.fps !== undefined ? { fps: options.fps } : {}),
      ...(options.size !== undefined ? { size: options.size } : {}),
      ...(signal ? { signal } : {}),
    }),
  );
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    outputs: { video: videoPath },
    sha256: await sha256File(videoPath),
    metadata: {
      source: args.sourceName,
      format: options.format,
      frames: result.frames,
      size: result.size,
      tiles: result.tiles,
      psnr: result.psnr,
      ssim: result.ssim,
      psnrMean: mean(result.psnr),
      ssimMean: mean(result.ssim),
    },
  };
}

/** The run function of one autoencoder kind: its items one by one through runItem. */
export function runAutoencoderJob(kind: AutoencoderKind): RunJob {
  return perItem((ctx, item, onProgress) =>
    runItem({
      runtime: ctx.runtime,
      kind,
      model: ctx.job.model,
      options: ctx.job.options as unknown as JobOptions,
      inputPath: item.inputPath as string,
      sourceName: item.sourceName ?? `file${item.index}`,
      outDir: ctx.outDir,
      baseName: String(item.index),
      signal: ctx.signal,
      onProgress,
    }),
  );
}
