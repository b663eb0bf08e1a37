// The request schemas of the four job kinds (pipeline/work/job-kinds.ts reads them): what each
// resource's POST takes, as multipart text fields (and, for generations, as JSON). Strict: a field
// a kind does not know (e.g. mode on a reconstruction) is a 400 naming it, never silently dropped.
// They validate the requests and, as JSON Schema, are the request bodies of the job resources in
// /openapi.json (server/routes/job-resource-docs.ts).

import { z } from "zod";
import { ENCODE_MODES } from "../autoencoder/encode.ts";
import { FRAME_SIZES } from "../autoencoder/tiling.ts";
import { OUTPUT_MODES } from "../generate/generate.ts";
import { SAMPLER_METHODS } from "../generate/sampler.ts";
import { ALL_OUTPUT_FORMATS, VIDEO_FORMATS } from "../media/output-formats.ts";

const model = z.string().min(1).max(200).meta({ description: "bundle name (GET /v1/models)" });
const fps = z.coerce
  .number()
  .positive()
  .max(240)
  .optional()
  .meta({ description: "frames per second to sample the video at (default: the bundle's fps)" });

const webhook = z.string().min(1).max(2000).optional().meta({
  description:
    "an http(s) URL called (signed, Standard Webhooks) when the job is over; needs DIFFUSABLE_WEBHOOK_SECRET",
});

const jobModel = model.optional().meta({
  description:
    "bundle name (GET /v1/models); default: DIFFUSABLE_DEFAULT_MODEL, else the se bundle (the same rule as generations)",
});

const size = z.enum(FRAME_SIZES).default("bundle").meta({
  description:
    "bundle: the bundle's square centre crop (its resolution, what it was trained on); native: the video's own width and height, each rounded to the bundle's spatial factor, the whole picture (no crop), tiled in space when larger than the bundle's tile; width x height at most DIFFUSABLE_MAX_PIXELS (422 too_large)",
});

export const EncodeOptionsSchema = z.strictObject({
  model: jobModel,
  mode: z.enum(ENCODE_MODES).default("clip").meta({
    description:
      "clip: consecutive 1+4k-frame clips like the training data; whole: the whole video causally",
  }),
  fps,
  dtype: z.enum(["float32", "float16"]).default("float32"),
  size,
  webhook,
});

export const VideoFormatSchema = z.enum(VIDEO_FORMATS);

export const DecodeOptionsSchema = z.strictObject({
  model: jobModel,
  format: VideoFormatSchema.default("mp4"),
  webhook,
});

export const ReconstructOptionsSchema = z.strictObject({
  model: jobModel,
  format: VideoFormatSchema.default("mp4"),
  fps,
  size,
  webhook,
});

const generationDescriptions = {
  model: "bundle name (GET /v1/models); default: DIFFUSABLE_DEFAULT_MODEL, else the se bundle",
  label: "class name or id (GET /v1/models: classes)",
  seed: "noise seed (docs/sampler.md); random when absent, reported back",
  steps:
    "sampler steps, up to the bundle's sampler.max_steps; default: the bundle's (GET /v1/models: generate.sampler.steps)",
  guidance:
    "classifier-free guidance scale (1 = none); default: the bundle's (GET /v1/models: generate.sampler.guidance)",
  frames:
    "1 + temporal_factor * k, up to the bundle's frames.max; with a video or an encoding (an extension): the new frames, a positive multiple of temporal_factor up to frames.max (default: one window, temporal_factor * (window_latents - extension_context_latents) of the manifest's conditioning), generated in windows of the denoiser's training length",
  n: "videos (1..8)",
  output:
    "an extension's output: continuation (the new frames only, default) or whole (the input, as the bundle reconstructs it, then the new frames)",
  encoding:
    "continue the latents of this encoding's item (instead of an upload): they are decoded and the extension continues those frames",
  item: "the encoding's item (default 0); a clip-mode item's last clip is continued",
};

export const GenerationRequestSchema = z.strictObject({
  model: model.optional().meta({ description: generationDescriptions.model }),
  label: z
    .union([z.string().min(1).max(200), z.number().int().nonnegative()])
    .meta({ description: generationDescriptions.label }),
  seed: z
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .meta({ description: generationDescriptions.seed }),
  steps: z.number().int().min(1).optional().meta({ description: generationDescriptions.steps }),
  guidance: z
    .number()
    .nonnegative()
    .max(100)
    .optional()
    .meta({ description: generationDescriptions.guidance }),
  method: z.enum(SAMPLER_METHODS).optional(),
  frames: z
    .number()
    .int()
    .positive()
    .optional()
    .meta({ description: generationDescriptions.frames }),
  format: z.enum(ALL_OUTPUT_FORMATS).default("mp4"),
  n: z.number().int().min(1).max(8).default(1).meta({ description: generationDescriptions.n }),
  output: z.enum(OUTPUT_MODES).optional().meta({ description: generationDescriptions.output }),
  encoding: z
    .string()
    .regex(/^enc_[\w-]{1,100}$/, "must be an encoding id (enc_...)")
    .optional()
    .meta({ description: generationDescriptions.encoding }),
  item: z.number().int().min(0).optional().meta({ description: generationDescriptions.item }),
  webhook,
});
export type GenerationRequest = z.infer<typeof GenerationRequestSchema>;

/** One field of a JSON request as a multipart text field: a number is read from its text (as
 * z.coerce does), a union with a string branch takes the text as that string (a label of digits
 * is a class id: generation-job.ts), anything else is text already; checks, defaults and
 * descriptions stay the JSON field's. */
function asTextField(field: z.ZodType): z.ZodType {
  let text: z.ZodType;
  if (field instanceof z.ZodOptional) text = asTextField(field.unwrap() as z.ZodType).optional();
  else if (field instanceof z.ZodDefault) {
    text = asTextField(field.unwrap() as z.ZodType).default(field._zod.def.defaultValue);
  } else if (field instanceof z.ZodNumber) text = field.clone({ ...field._zod.def, coerce: true });
  else if (field instanceof z.ZodUnion) {
    text = (field.options as z.ZodType[]).find((o) => o instanceof z.ZodString) ?? field;
  } else return field;
  const meta = field.meta();
  return meta ? text.meta(meta) : text;
}

/** A JSON request schema as the multipart form that carries the same fields as text (strict as
 * the JSON one: an unknown field is a 400 naming it). */
function asForm<S extends z.ZodRawShape>(json: z.ZodObject<S>): z.ZodObject<S> {
  const shape = Object.fromEntries(
    Object.entries(json.shape).map(([name, field]) => [name, asTextField(field as z.ZodType)]),
  );
  return z.strictObject(shape) as unknown as z.ZodObject<S>;
}

/** The multipart form of POST /v1/generations (image-to-video, extension): the JSON request's
 * fields as text, beside the `image` or `video` file. */
export const GenerationFormSchema = asForm(GenerationRequestSchema);
