// The one default-model rule of every resource and of the CLI: the bundle a request names, else
// DIFFUSABLE_DEFAULT_MODEL, else the loaded "se" bundle.

import { AppError } from "../../app-error.ts";
import { isPipelineError } from "../pipeline-error.ts";
import type { ModelRuntime } from "../runtime.ts";

/**
 * The bundle a request uses when it names none: `configured` (the server's
 * DIFFUSABLE_DEFAULT_MODEL) when given, else the loaded bundle of variant "se" (the first by
 * name when there are several, preferring those that can generate), else null.
 */
export function defaultModelOf(rt: ModelRuntime, configured?: string | null): string | null {
  if (configured) return configured;
  const se = rt
    .bundles()
    .filter((b) => b.variant === "se")
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return (se.find((b) => b.generate !== null) ?? se[0])?.name ?? null;
}

/**
 * The one default-model rule of every resource and of the CLI: the requested bundle, else
 * defaultModelOf. Errors: 400 "invalid_field" when there is no default, 404 "unknown_model"
 * naming the known models.
 */
export function resolveModel(
  runtime: ModelRuntime,
  requested: string | undefined,
  configured: string | null = null,
): ReturnType<ModelRuntime["loaded"]> {
  const modelName = requested ?? defaultModelOf(runtime, configured);
  if (modelName === null) {
    const known = runtime.bundles().map((m) => m.name);
    throw new AppError(
      "invalid_field",
      `model: required: no default model (DIFFUSABLE_DEFAULT_MODEL is unset and no loaded bundle has variant "se"); known models: ${known.length ? known.join(", ") : "(none)"}`,
      400,
    );
  }
  try {
    return runtime.loaded(modelName);
  } catch (err) {
    if (isPipelineError(err, "unknown_model")) {
      const from = requested === undefined ? " (the default, DIFFUSABLE_DEFAULT_MODEL)" : "";
      throw new AppError("unknown_model", `model: ${err.message}${from}`, 404);
    }
    throw err;
  }
}
