// The inputs a generation may start from (image-to-video, video extension), checked before the
// 202 and stored in the job's upload folder (generation-job.ts GenerationInput): an uploaded
// image (or a one-frame video), an uploaded clip, or the latents of an existing encoding item
// (copied, so that deleting the encoding later changes nothing). Every failure is an AppError
// whose message is a sentence; the route names the field.

import { copyFile, mkdir, readFile, rename } from "node:fs/promises";
import { extname, join } from "node:path";
import { AppError } from "../../app-error.ts";
import type { Store } from "../../store/store.ts";
import type { Bundle } from "../bundle.ts";
import { NpyDtypeError, parseNpy } from "../media/npy-file.ts";
import { countVideoFrames, probeVideo } from "../media/video.ts";
import { isPipelineError, PipelineError } from "../pipeline-error.ts";
import { sha256File } from "./datadir.ts";
import { checkVideoInput } from "./input-checks.ts";

/** An image field: a still image ffmpeg reads (PNG, JPEG, WebP, ...) or a one-frame video. */
export async function checkImageInput(path: string): Promise<void> {
  let info: Awaited<ReturnType<typeof probeVideo>>;
  try {
    info = await probeVideo(path);
  } catch (err) {
    // A file that only looks like an image (ffprobe's image demuxers guess by name) has no size.
    const sizeless =
      isPipelineError(err, "bad_dimensions") && /declares (0x|\d+x0 )/.test(err.message);
    if (isPipelineError(err, "not_a_video") || isPipelineError(err, "truncated") || sizeless) {
      throw new PipelineError(
        "not_an_image",
        "the file is not an image (PNG, JPEG, WebP) or a one-frame video that ffmpeg can read.",
        422,
      );
    }
    throw err;
  }
  if (info.stillImage) return;
  const frames = info.frames ?? (await countVideoFrames(path));
  if (frames !== 1) {
    throw new PipelineError(
      "not_an_image",
      `the file is a video of ${frames} frames, not one image; send a clip as "video" to extend it.`,
      422,
    );
  }
}

/** A video field: a clip to extend, encoded whole (the checks of a whole-mode encoding). */
export async function checkClipInput(
  bundle: Bundle,
  path: string,
  maxSeconds: number,
): Promise<void> {
  await checkVideoInput(bundle, path, { mode: "whole", maxSeconds });
}

/** Moves a checked upload into the folder `dir` as input<ext>; returns its name and sha256. */
export async function storeUpload(
  dir: string,
  path: string,
): Promise<{ file: string; sha256: string }> {
  await mkdir(dir, { recursive: true });
  const file = `input${extname(path).toLowerCase()}`;
  await rename(path, join(dir, file));
  return { file, sha256: await sha256File(join(dir, file)) };
}

/**
 * The latents of item `item` of encoding `encodingId`, as this key may see it, checked against
 * the bundle and copied into the folder `dir` as input.npy. Errors: 404 "not_found" (no
 * such encoding for this key), 409 "item_not_ready", 400 "bad_latents" (another model's or
 * another size's latents).
 */
export async function storeEncodingLatents(
  db: Store,
  dir: string,
  bundle: Bundle,
  key: { id: string; role: string },
  encodingId: string,
  item: number,
): Promise<{ file: string; sha256: string; source: string }> {
  const found = await db.getJob(encodingId);
  if (found?.job.kind !== "encode" || (found.job.keyId !== key.id && key.role !== "admin")) {
    throw new AppError("not_found", `encoding: there is no encoding "${encodingId}".`, 404);
  }
  const row = await db.getItem(encodingId, item);
  if (!row) {
    throw new AppError("not_found", `item: encoding "${encodingId}" has no item ${item}.`, 404);
  }
  const latents = row.outputs?.latents;
  if (row.status !== "succeeded" || latents === undefined) {
    throw new AppError(
      "item_not_ready",
      `encoding: item ${item} of encoding "${encodingId}" is ${row.status}; its latents are not ready.`,
      409,
    );
  }
  if (found.job.model !== bundle.name) {
    throw new AppError(
      "bad_latents",
      `encoding: "${encodingId}" holds latents of model ${found.job.model}; this generation uses model ${bundle.name}.`,
      400,
    );
  }
  const m = bundle.manifest;
  const side = m.resolution / m.spatial_factor;
  let shape: number[];
  try {
    shape = parseNpy(await readFile(latents)).shape;
  } catch (err) {
    if (err instanceof NpyDtypeError || err instanceof Error) {
      throw new AppError("bad_latents", `encoding: "${encodingId}"'s latents cannot be read.`, 400);
    }
    throw err;
  }
  const [, c, t = 0, h, w] = shape;
  if (shape.length !== 5 || c !== m.latent_channels || h !== side || w !== side || t < 1) {
    throw new AppError(
      "bad_latents",
      `encoding: "${encodingId}"'s latents have shape (${shape.join(", ")}); model ${bundle.name} continues (N, ${m.latent_channels}, t, ${side}, ${side}) latents.`,
      400,
    );
  }
  await mkdir(dir, { recursive: true });
  await copyFile(latents, join(dir, "input.npy"));
  return {
    file: "input.npy",
    sha256: await sha256File(join(dir, "input.npy")),
    source: `${encodingId}/items/${item}`,
  };
}
