// The models the service runs: the valid bundles under a models dir and the worker pool that runs
// their ONNX files. What the HTTP layer and the CLI hold; autoencoder/ and generate/ do the work through it.

import { trainedSizes } from "./autoencoder/tiling.ts";
import { type Bundle, listBundles } from "./bundle.ts";
import { setProcessPriority } from "./media/process-host.ts";
import { type Feeds, type Outputs, type PoolOptions, SessionPool } from "./onnx/session-pool.ts";
import { PipelineError } from "./pipeline-error.ts";

/** What a client may know about a bundle (JSON-safe; no local paths). */
export interface BundleInfo {
  name: string;
  variant: string;
  resolution: number;
  fps: number;
  frames: { rule: string; default: number; max: number };
  spatialFactor: number;
  temporalFactor: number;
  latentChannels: number;
  /** [height, width] of the clips the autoencoder was trained on (manifest trained_sizes). */
  trainedSizes: number[][];
  /** How size=native frames are tiled, in latent cells and pixels; null: in one piece. */
  tiling: {
    tileLatents: number;
    tilePixels: number;
    overlapLatents: number;
    overlapPixels: number;
  } | null;
  classes: string[];
  /** sha256 of manifest.json, which pins every file's sha256. */
  sha256: string;
  /** sha256 and size of each ONNX file. */
  files: Record<string, { sha256: string; bytes: number }>;
  metrics: Record<string, unknown>;
  /** Whether the bundle has a denoiser, and its sampler defaults. */
  generate: {
    nullClass: number;
    sampler: { method: string; steps: number; guidance: number; maxSteps: number };
  } | null;
}

export type ModelRole = "encoder" | "decoder" | "encoderInit" | "encoderStep" | "denoiser";

export interface RuntimeOptions {
  modelsDir: string;
  /** Worker threads (default: the machine's cores). */
  threads?: number;
  /** Threads per worker inside one operator (default: cores / threads). */
  intraOpThreads?: number;
  /** onnxruntime execution providers, e.g. ["cuda", "cpu"]; default ["cpu"]. */
  providers?: string[];
  /**
   * Nice value (0..19) of the pipeline's work, model threads and ffmpeg alike, so that it yields
   * the cores to the caller's event loop (thread-priority.mjs); default 0.
   */
  nice?: number;
  /** Model workers as threads (default) or as processes of their own (session-pool.ts). */
  isolation?: "thread" | "process";
}

function info(b: Bundle): BundleInfo {
  const m = b.manifest;
  return {
    name: b.name,
    variant: m.variant,
    resolution: m.resolution,
    fps: m.fps,
    frames: { ...m.frames },
    spatialFactor: m.spatial_factor,
    temporalFactor: m.temporal_factor,
    latentChannels: m.latent_channels,
    trainedSizes: trainedSizes(m).map((s) => [...s]),
    tiling: m.tiling
      ? {
          tileLatents: m.tiling.tile_latents,
          tilePixels: m.tiling.tile_pixels,
          overlapLatents: m.tiling.overlap_latents,
          overlapPixels: m.tiling.overlap_pixels,
        }
      : null,
    classes: [...m.classes],
    sha256: b.sha256,
    files: structuredClone(m.files),
    metrics: structuredClone(m.metrics ?? {}),
    generate:
      m.onnx.denoiser !== undefined && m.null_class !== undefined && m.sampler !== undefined
        ? {
            nullClass: m.null_class,
            sampler: {
              method: m.sampler.method,
              steps: m.sampler.steps,
              guidance: m.sampler.guidance,
              maxSteps: m.sampler.max_steps,
            },
          }
        : null,
  };
}

export class ModelRuntime {
  readonly pool: SessionPool;
  readonly modelsDir: string;
  #bundles: Map<string, Bundle>;
  #invalid: { dir: string; message: string }[];

  private constructor(
    modelsDir: string,
    pool: SessionPool,
    bundles: Bundle[],
    invalid: { dir: string; message: string }[],
  ) {
    this.modelsDir = modelsDir;
    this.pool = pool;
    this.#bundles = new Map(bundles.map((b) => [b.name, b]));
    this.#invalid = invalid;
  }

  /** Loads every valid bundle under modelsDir (invalid ones are listed by invalidBundles()). */
  static async open(opts: RuntimeOptions): Promise<ModelRuntime> {
    const scan = await listBundles(opts.modelsDir);
    const poolOptions: PoolOptions = {
      ...(opts.threads !== undefined ? { size: opts.threads } : {}),
      ...(opts.intraOpThreads !== undefined ? { intraOpThreads: opts.intraOpThreads } : {}),
      ...(opts.providers !== undefined ? { providers: opts.providers } : {}),
      ...(opts.nice !== undefined ? { nice: opts.nice } : {}),
      ...(opts.isolation !== undefined ? { isolation: opts.isolation } : {}),
    };
    const invalid = scan.invalid.map((i) => ({ dir: i.dir, message: i.error.message }));
    if (opts.nice !== undefined) setProcessPriority(opts.nice);
    return new ModelRuntime(opts.modelsDir, new SessionPool(poolOptions), scan.bundles, invalid);
  }

  bundles(): BundleInfo[] {
    return [...this.#bundles.values()].map(info);
  }

  /** What a client may know about one bundle (bundles() lists them all); throws PipelineError
   * "unknown_model" (404) naming the known bundles. loaded() gives the Bundle itself. */
  bundleInfo(name: string): BundleInfo {
    return info(this.loaded(name));
  }

  /** The loaded bundle (manifest and file paths); throws like bundle(). */
  loaded(name: string): Bundle {
    const b = this.#bundles.get(name);
    if (b === undefined) {
      const known = [...this.#bundles.keys()];
      throw new PipelineError(
        "unknown_model",
        `unknown model "${name}"; known models: ${known.length ? known.join(", ") : "(none)"}`,
        404,
      );
    }
    return b;
  }

  /** Bundle folders that failed to load, with the reason (bad manifest, sha256 mismatch, ...). */
  invalidBundles(): { dir: string; message: string }[] {
    return this.#invalid.map((i) => ({ ...i }));
  }

  /** Runs one of a bundle's graphs in the pool; the feeds' buffers are moved, not copied. */
  run(bundle: Bundle, role: ModelRole, feeds: Feeds, signal?: AbortSignal): Promise<Outputs> {
    const path = bundle.paths[role];
    if (path === undefined) {
      throw new PipelineError(
        "cannot_generate",
        `model "${bundle.name}" has no ${role} (manifest onnx.${role}); it cannot generate`,
        422,
      );
    }
    return this.pool.run(path, feeds, {
      transfer: true,
      ...(signal ? { signal } : {}),
    });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
