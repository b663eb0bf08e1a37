// The one view of a job (its JSON in every answer, event and webhook), the same for every
// resource: status, progress and steps, timings, the error, each item with its download URLs by
// output role, and each succeeded item's main output. Error messages never hold a server path.

import { kindNamed } from "../pipeline/work/job-kinds.ts";
import type { JobKind } from "../pipeline/work/kind-contract.ts";
import type { JobWithItems } from "../store/job-rows.ts";
import type { JobItemRow } from "../store/schema.ts";
import { hidePaths } from "./redact.ts";

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const ms = (a: Date | null, b: Date | null) => (a && b ? b.getTime() - a.getTime() : null);

/** /v1/<resource>/<id> of a job. */
export function jobPath(kind: JobKind, id: string): string {
  return `/v1/${kind.resource}/${id}`;
}

/** The download URLs of a succeeded item, by output role. */
function itemUrls(base: string, item: JobItemRow): Record<string, string> {
  if (item.status !== "succeeded" || !item.outputs) return {};
  return Object.fromEntries(
    Object.keys(item.outputs).map((role) => [role, `${base}/items/${item.index}/${role}`]),
  );
}

/** The main output of an item: its first role that is a file of its own. */
function mainRole(item: JobItemRow): string | undefined {
  return Object.keys(item.outputs ?? {}).find((role) => role !== "metadata");
}

export function jobJson({ job, items }: JobWithItems) {
  const kind = kindNamed(job.kind);
  const base = jobPath(kind, job.id);
  const finishedItems = items.filter((i) => i.status !== "queued" && i.status !== "running");
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    model: job.model,
    options: job.options,
    ...(kind.view?.(job.options) ?? {}),
    progress: Math.round(job.progress * 1000) / 1000,
    step: job.steps === null ? finishedItems.length : job.step,
    steps: job.steps ?? items.length,
    attempts: job.attempts,
    error: job.errorCode
      ? { code: job.errorCode, message: hidePaths(job.errorMessage ?? "") }
      : null,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    timings: {
      queuedMs: ms(job.createdAt, job.startedAt),
      runMs: ms(job.startedAt, job.finishedAt),
    },
    items: items.map((item) => ({
      index: item.index,
      source: item.sourceName,
      status: item.status,
      error: item.errorCode
        ? { code: item.errorCode, message: hidePaths(item.errorMessage ?? "") }
        : null,
      sha256: item.outputSha256,
      metadata: item.metadata ?? null,
      urls: itemUrls(base, item),
    })),
    outputs: items.flatMap((item) => {
      const role = mainRole(item);
      return item.status === "succeeded" && role && item.outputSha256
        ? [
            {
              index: item.index,
              sha256: item.outputSha256,
              url: `${base}/items/${item.index}/${role}`,
            },
          ]
        : [];
    }),
  };
}

export type JobJson = ReturnType<typeof jobJson>;
