// One line of a run's events.jsonl (docs/training.md "events.jsonl"): parsed, validated with zod,
// and either accepted as an event or rejected with a reason (bad JSON, unknown type, a missing or
// mistyped field). Pure: no I/O.

import { z } from "zod";
import { RUN_KINDS } from "../../store/schema.ts";

export const EVENT_TYPES = [
  "config",
  "status",
  "train",
  "val",
  "eval",
  "spectrum",
  "checkpoint",
  "export",
  "reference",
  "ae_eval",
  "budget", // --time-budget fixed the step count (trainer.StepBudget)
  "ddp", // a DDP run's replicas compared at its end
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Event types whose top-level finite numbers become metrics (`<type>/<field>`). */
export const METRIC_EVENT_TYPES: readonly EventType[] = [
  "train",
  "val",
  "eval",
  "spectrum",
  "reference",
];

/** Run ids are folder names: they must be safe in a URL path and a file name. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const step = z.number().int().nonnegative();
const base = z.looseObject({ time: z.number(), step: step.optional() });
const withStep = base.extend({ step });

const SCHEMAS: Record<EventType, z.ZodType<Record<string, unknown>>> = {
  config: base.extend({
    run_id: z.string().regex(RUN_ID_PATTERN, "must be a folder-like name (A-Z a-z 0-9 . _ -)"),
    kind: z.enum(RUN_KINDS),
    variant: z.string().optional(),
    autoencoder: z.looseObject({ run_id: z.string().optional() }).nullish(),
    train: z.looseObject({ steps: step.optional() }).nullish(),
  }),
  status: base.extend({ status: z.string().min(1) }),
  train: withStep,
  val: withStep,
  eval: withStep,
  spectrum: withStep,
  checkpoint: withStep.extend({ path: z.string().min(1) }),
  // The linear code's figures on the validation clips (step 0), and the reconstruction benchmark.
  reference: withStep.extend({ name: z.string().min(1) }),
  ae_eval: base,
  budget: withStep.extend({ steps: step }),
  ddp: withStep,
  export: base.extend({
    path: z.string().min(1),
    bundle: z.string().optional(),
    files: z.record(z.string(), z.looseObject({ sha256: z.string().optional() })).optional(),
  }),
};

export interface RunEvent {
  type: EventType;
  /** Unix seconds. */
  time: number;
  step: number | null;
  /** The whole object as written. */
  json: Record<string, unknown>;
}

export type LineResult = { ok: true; event: RunEvent } | { ok: false; reason: string };

const isEventType = (t: string): t is EventType => (EVENT_TYPES as readonly string[]).includes(t);

/** Parses one line (without its newline). */
export function parseEventLine(text: string): LineResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `bad JSON: ${(err as Error).message}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, reason: "not a JSON object" };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string") return { ok: false, reason: "type: missing or not a string" };
  if (!isEventType(type))
    return { ok: false, reason: `unknown event type ${JSON.stringify(type)}` };
  const parsed = SCHEMAS[type].safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.length ? issue.path.join(".") : "event";
    return { ok: false, reason: `${type} event: ${field}: ${issue?.message ?? "invalid"}` };
  }
  const json = value as Record<string, unknown>;
  return {
    ok: true,
    event: {
      type,
      time: json.time as number,
      step: typeof json.step === "number" ? json.step : null,
      json,
    },
  };
}

/** The metrics an event carries: every top-level finite number but step and time. */
export function eventMetrics(event: RunEvent): { name: string; value: number }[] {
  if (!METRIC_EVENT_TYPES.includes(event.type) || event.step === null) return [];
  const out: { name: string; value: number }[] = [];
  for (const [key, value] of Object.entries(event.json)) {
    if (key === "step" || key === "time" || key === "type") continue;
    if (typeof value === "number" && Number.isFinite(value)) {
      out.push({ name: `${event.type}/${key}`, value });
    }
  }
  return out;
}

/** What the run row takes from its config event. */
export function configFacts(config: Record<string, unknown>): {
  runId: string;
  kind: (typeof RUN_KINDS)[number];
  variant: string | null;
  autoencoderRunId: string | null;
  steps: number | null;
} {
  const ae = config.autoencoder as { run_id?: string; variant?: string } | null | undefined;
  const train = config.train as { steps?: number } | null | undefined;
  return {
    runId: config.run_id as string,
    kind: config.kind as (typeof RUN_KINDS)[number],
    variant:
      (typeof config.variant === "string" ? config.variant : null) ??
      (typeof ae?.variant === "string" ? ae.variant : null),
    autoencoderRunId: typeof ae?.run_id === "string" ? ae.run_id : null,
    steps: typeof train?.steps === "number" ? train.steps : null,
  };
}
