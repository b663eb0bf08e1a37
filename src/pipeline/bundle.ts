// Model bundles (docs/bundle.md): a folder of ONNX files and a manifest.json. Loading validates
// the manifest with zod (errors name the bad field) and checks every file's size and sha256
// against it, so a half-copied or edited bundle is refused rather than served.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { SAMPLER_METHODS } from "./generate/sampler.ts";
import { PipelineError } from "./pipeline-error.ts";

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "a lowercase hex sha256");
const positiveInt = z.number().int().positive();

export const manifestSchema = z
  .object({
    format: z.literal("diffusable-bundle/1"),
    name: z.string().min(1),
    variant: z.string().min(1),
    resolution: positiveInt,
    fps: z.number().positive(),
    frames: z.object({
      rule: z.string().regex(/^1\+\d+k$/, 'a rule like "1+4k"'),
      /** The fewest frames the decoder turns latents into (1: a single latent frame); without
       * it, 1 + temporal_factor (two latent frames, what the PCA bundles need). */
      min: positiveInt.optional(),
      default: positiveInt,
      max: positiveInt,
    }),
    spatial_factor: positiveInt,
    temporal_factor: positiveInt,
    latent_channels: positiveInt,
    latent: z.object({
      scaled: z.boolean(),
      shift: z.array(z.number()),
      scale: z.array(z.number()),
    }),
    classes: z.array(z.string()),
    /** The label id of "no label" for guidance (= classes.length); with onnx.denoiser. */
    null_class: z.number().int().nonnegative().optional(),
    /** The sampler defaults of the diffusion run that made the bundle (docs/sampler.md). */
    sampler: z
      .looseObject({
        method: z.enum(SAMPLER_METHODS),
        steps: positiveInt,
        guidance: z.number().nonnegative(),
        max_steps: positiveInt,
        schedule: z.literal("uniform").optional(),
      })
      .optional(),
    denoiser_config: z.record(z.string(), z.unknown()).optional(),
    autoencoder_config: z.record(z.string(), z.unknown()),
    /** The autoencoder's architecture name, as the export wrote it (load_autoencoder's key). */
    architecture: z.string().min(1).optional(),
    /** Latent frames of history a decoder output can depend on (its receptive field in time),
     * as the export measured it; windowed decoding feeds this many in front of each window.
     * Bundles without it fall back to the derivation from autoencoder_config (decode.ts). */
    decoder_context_latents: z.number().int().nonnegative().optional(),
    /** The window a context-trained denoiser learnt on (docs/sampler.md "Context"): clips of
     * window_frames frames (window_latents latent frames) whose first 1..max_context_latents
     * latents were given; extension_context_latents is the context of each window of a chained
     * extension. Written by denoiser_bundle; without it, the window is frames.default and the
     * extension context 2 latent frames (generate.ts conditioningOf). */
    conditioning: z
      .looseObject({
        window_frames: positiveInt,
        window_latents: positiveInt,
        max_context_latents: positiveInt,
        extension_context_latents: positiveInt,
      })
      .optional(),
    /** [height, width] of the clips the autoencoder was trained on; without it, the resolution
     * square (autoencoder/tiling.ts trainedSizes). */
    trained_sizes: z
      .array(z.tuple([positiveInt, positiveInt]))
      .min(1)
      .optional(),
    /** How frames larger than a tile are encoded and decoded (docs/bundle.md "Tiling"); without
     * it, native-size frames run in one piece (autoencoder/tiling.ts tilingOf). */
    tiling: z
      .looseObject({
        tile_latents: positiveInt,
        tile_pixels: positiveInt,
        overlap_latents: z.number().int().nonnegative(),
        overlap_pixels: z.number().int().nonnegative(),
        margin_latents: z.number().int().nonnegative(),
        blend_latents: z.number().int().nonnegative(),
      })
      .optional(),
    onnx: z.looseObject({
      encoder: z.string().min(1),
      decoder: z.string().min(1),
      /** The diffusion model; a bundle without it cannot generate. */
      denoiser: z.string().min(1).optional(),
      /** How the parameters are stored in the files; the graphs compute in fp32 either way. */
      weights: z.enum(["fp32", "fp16", "int8"]).optional(),
      denoiser_weights: z.enum(["fp32", "fp16", "int8"]).optional(),
      /** Weights files the graphs keep their parameters in (ONNX external data, resolved
       *  beside the graph): the encoder graphs share one (onnx_shared_weights.py). */
      external_data: z.array(z.string().min(1)).optional(),
      encoder_stream: z.object({
        init: z.string().min(1),
        step: z.string().min(1),
        chunk_frames: positiveInt,
        caches: z.array(
          z.object({
            name: z.string(),
            channels: positiveInt,
            frames: z.number().int().nonnegative(),
            downscale: positiveInt,
          }),
        ),
      }),
    }),
    runs: z.record(z.string(), z.unknown()).optional(),
    metrics: z.record(z.string(), z.unknown()).optional(),
    files: z.record(
      z.string(),
      z.object({ sha256: sha256Hex, bytes: z.number().int().nonnegative() }),
    ),
  })
  .loose()
  .superRefine((m, ctx) => {
    if (m.onnx.denoiser !== undefined) {
      for (const key of ["null_class", "sampler"] as const) {
        if (m[key] === undefined) {
          ctx.addIssue({ code: "custom", path: [key], message: "is required with onnx.denoiser" });
        }
      }
    }
    if (m.sampler !== undefined && m.sampler.steps > m.sampler.max_steps) {
      ctx.addIssue({
        code: "custom",
        path: ["sampler", "steps"],
        message: `${m.sampler.steps} is more than max_steps ${m.sampler.max_steps}`,
      });
    }
    const tf = m.temporal_factor;
    if (m.frames.rule !== `1+${tf}k`) {
      ctx.addIssue({
        code: "custom",
        path: ["frames", "rule"],
        message: `is "${m.frames.rule}" but temporal_factor is ${tf} (expected "1+${tf}k")`,
      });
    }
    for (const key of ["min", "default", "max"] as const) {
      const value = m.frames[key];
      if (value !== undefined && (value - 1) % tf !== 0) {
        ctx.addIssue({
          code: "custom",
          path: ["frames", key],
          message: `${value} does not follow the rule 1+${tf}k`,
        });
      }
    }
    if (m.frames.min !== undefined && m.frames.min > m.frames.default) {
      ctx.addIssue({
        code: "custom",
        path: ["frames", "min"],
        message: `${m.frames.min} is more than frames.default ${m.frames.default}`,
      });
    }
    const t = m.tiling;
    if (t !== undefined) {
      const overlap = 2 * t.margin_latents + t.blend_latents;
      const problems: [string, string][] = [];
      if (t.overlap_latents !== overlap)
        problems.push([
          "overlap_latents",
          `${t.overlap_latents} is not 2 x margin_latents + blend_latents (${overlap})`,
        ]);
      if (t.tile_latents <= overlap)
        problems.push([
          "tile_latents",
          `${t.tile_latents} is not more than the overlap ${overlap}`,
        ]);
      if (t.tile_pixels !== t.tile_latents * m.spatial_factor)
        problems.push(["tile_pixels", `${t.tile_pixels} is not tile_latents x spatial_factor`]);
      if (t.overlap_pixels !== t.overlap_latents * m.spatial_factor)
        problems.push([
          "overlap_pixels",
          `${t.overlap_pixels} is not overlap_latents x spatial_factor`,
        ]);
      for (const [key, message] of problems) {
        ctx.addIssue({ code: "custom", path: ["tiling", key], message });
      }
    }
    if (m.resolution % m.spatial_factor !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["resolution"],
        message: `${m.resolution} is not a multiple of spatial_factor ${m.spatial_factor}`,
      });
    }
    for (const key of ["shift", "scale"] as const) {
      if (m.latent[key].length !== m.latent_channels) {
        ctx.addIssue({
          code: "custom",
          path: ["latent", key],
          message: `has ${m.latent[key].length} values, latent_channels is ${m.latent_channels}`,
        });
      }
    }
    const s = m.onnx.encoder_stream;
    for (const [path, file] of [
      [["onnx", "encoder"], m.onnx.encoder],
      [["onnx", "decoder"], m.onnx.decoder],
      [["onnx", "encoder_stream", "init"], s.init],
      [["onnx", "encoder_stream", "step"], s.step],
      ...(m.onnx.denoiser === undefined
        ? []
        : ([[["onnx", "denoiser"], m.onnx.denoiser]] as const)),
      ...(m.onnx.external_data ?? []).map(
        (file, i) => [["onnx", "external_data", i], file] as const,
      ),
    ] as const) {
      if (!(file in m.files)) {
        ctx.addIssue({
          code: "custom",
          path: [...path],
          message: `"${file}" is not listed in files`,
        });
      }
      if (file.includes("/") || file.includes("\\") || file.startsWith(".")) {
        ctx.addIssue({
          code: "custom",
          path: [...path],
          message: `"${file}" is not a plain file name`,
        });
      }
    }
  });

export type Manifest = z.infer<typeof manifestSchema>;

/** The fewest video frames a bundle decodes: manifest frames.min, else 1 + temporal_factor. */
export function minFrames(m: Pick<Manifest, "frames" | "temporal_factor">): number {
  return m.frames.min ?? 1 + m.temporal_factor;
}

export interface Bundle {
  /** The folder's name: what the API calls the model. */
  name: string;
  dir: string;
  manifest: Manifest;
  /** sha256 of manifest.json, which itself pins the sha256 of every file: the bundle's identity. */
  sha256: string;
  /** Absolute paths of the ONNX files by role. */
  paths: {
    encoder: string;
    decoder: string;
    encoderInit: string;
    encoderStep: string;
    /** Absent when the bundle has no denoiser.onnx (it cannot generate). */
    denoiser?: string;
  };
}

const invalid = (dir: string, message: string, cause?: unknown) =>
  new PipelineError("invalid_bundle", `bundle ${dir}: ${message}`, 500, { cause });

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

/** Parses and validates manifest text; throws PipelineError "invalid_bundle" naming bad fields. */
export function parseManifest(text: string, dir = "(manifest)"): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(dir, `manifest.json is not JSON: ${(err as Error).message}`, err);
  }
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    throw invalid(dir, `manifest.json: ${describeIssues(result.error)}`, result.error);
  }
  return result.data;
}

/** Loads a bundle folder: validated manifest, every listed file present with its size and sha256. */
export async function loadBundle(dir: string): Promise<Bundle> {
  let text: string;
  try {
    text = await readFile(join(dir, "manifest.json"), "utf8");
  } catch (err) {
    throw invalid(dir, `cannot read manifest.json: ${(err as Error).message}`, err);
  }
  const manifest = parseManifest(text, dir);
  for (const [file, expected] of Object.entries(manifest.files)) {
    const path = join(dir, file);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      throw invalid(dir, `${file} is listed in the manifest but cannot be read`, err);
    }
    if (size !== expected.bytes) {
      throw invalid(dir, `${file} has ${size} bytes, the manifest says ${expected.bytes}`);
    }
    const actual = await sha256File(path);
    if (actual !== expected.sha256) {
      throw invalid(dir, `${file} has sha256 ${actual}, the manifest says ${expected.sha256}`);
    }
  }
  const s = manifest.onnx.encoder_stream;
  return {
    name: dir.split("/").filter(Boolean).pop() ?? manifest.name,
    dir,
    manifest,
    sha256: createHash("sha256").update(text).digest("hex"),
    paths: {
      encoder: join(dir, manifest.onnx.encoder),
      decoder: join(dir, manifest.onnx.decoder),
      encoderInit: join(dir, s.init),
      encoderStep: join(dir, s.step),
      ...(manifest.onnx.denoiser === undefined
        ? {}
        : { denoiser: join(dir, manifest.onnx.denoiser) }),
    },
  };
}

export interface BundleScan {
  bundles: Bundle[];
  /** Folders that look like bundles but failed to load, with the reason. */
  invalid: { dir: string; error: PipelineError }[];
}

/** Every bundle folder directly under modelsDir; invalid ones are reported, not thrown. */
export async function listBundles(modelsDir: string): Promise<BundleScan> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(modelsDir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { bundles: [], invalid: [] };
    throw err;
  }
  const scan: BundleScan = { bundles: [], invalid: [] };
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const dir = join(modelsDir, entry.name);
    try {
      scan.bundles.push(await loadBundle(dir));
    } catch (err) {
      if (!(err instanceof PipelineError)) throw err;
      scan.invalid.push({ dir, error: err });
    }
  }
  return scan;
}
