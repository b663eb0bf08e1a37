// Webhooks: a request may carry `webhook` (an http(s) URL); once its job is over,
// the server POSTs {type, timestamp, data: <the job JSON>} there, signed per the Standard
// Webhooks convention (webhook-id, webhook-timestamp, webhook-signature: "v1,<base64 HMAC-SHA256
// of `id.timestamp.body`>" with the key of DIFFUSABLE_WEBHOOK_SECRET, "whsec_<base64>"). A
// delivery that fails (no 2xx, a network error, a timeout) is retried with exponential backoff
// (DIFFUSABLE_WEBHOOK_RETRY_MS, doubling, at most MAX_ATTEMPTS tries). The state is the
// `webhooks` table, so deliveries survive restarts. Only http(s) URLs; loopback, private and
// link-local addresses, in every spelling (private-address.ts), are refused at submission and
// again at delivery, where the check sits in the connection's own DNS lookup (so a name cannot
// resolve to a public address for the check and a private one for the connection), unless
// DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE is set. With PostgreSQL every process sends webhooks; each
// takes the due rows it sends with a lease (pg-store.ts dueWebhooks), so each is sent once.

import { createHmac, randomBytes } from "node:crypto";
import { type LookupAddress, type LookupAllOptions, lookup } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { kindNamed } from "../pipeline/work/job-kinds.ts";
import { TERMINAL_STATUSES } from "../store/schema.ts";
import type { Store, WebhookValues } from "../store/store.ts";
import { ApiError } from "./api-error.ts";
import { jobJson } from "./job-view.ts";
import { isLocalName, isPrivateAddress } from "./private-address.ts";

export { isPrivateAddress } from "./private-address.ts";

export const MAX_ATTEMPTS = 8;
const TERMINAL = new Set<string>(TERMINAL_STATUSES);
const TIMEOUT_MS = 10_000;

export interface WebhookSettings {
  /** "whsec_<base64>"; null: requests with `webhook` are refused. */
  secret: string | null;
  allowPrivate: boolean;
  /** First retry delay; each later one doubles. */
  retryMs: number;
}

/** Checks a request's webhook URL; returns it normalised, or throws a 400 naming `webhook`. */
export function checkWebhookUrl(raw: string, settings: WebhookSettings): string {
  if (settings.secret === null) {
    throw new ApiError(
      "invalid_field",
      "webhook is not available on this server: DIFFUSABLE_WEBHOOK_SECRET is not set.",
      400,
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ApiError(
      "invalid_field",
      `webhook must be an absolute http(s) URL, got ${JSON.stringify(raw)}.`,
      400,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ApiError(
      "invalid_field",
      `webhook must be an http or https URL, not ${url.protocol}.`,
      400,
    );
  }
  if (url.username || url.password) {
    throw new ApiError("invalid_field", "webhook must not carry a user name or password.", 400);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!settings.allowPrivate && (isLocalName(host) || (isIP(host) && isPrivateAddress(host)))) {
    throw new ApiError(
      "invalid_field",
      `webhook points at a loopback or private address (${host}); set DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE to allow it.`,
      400,
    );
  }
  return url.toString();
}

/** Records that this job wants a webhook once it is over. */
export async function registerWebhook(db: Store, jobId: string, url: string): Promise<void> {
  await db.insertWebhook({ id: `msg_${randomBytes(12).toString("hex")}`, jobId, url });
}

/** The Standard Webhooks signature header value of one message. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** The event of a finished job (`type`: "<one of its resource>.<status>", `data`: the job JSON),
 * "active" while it runs, or null when it is gone. */
export type WebhookPayload = (
  jobId: string,
) => Promise<{ type: string; data: Record<string, unknown> } | "active" | null>;

/** The payload of a job's webhook: its view once it is over (webhook.test.ts and serve.ts). */
export function jobWebhookPayload(db: Store): WebhookPayload {
  return async (jobId) => {
    const found = await db.getJob(jobId);
    if (!found) return null;
    if (!TERMINAL.has(found.job.status)) return "active";
    return {
      type: `${kindNamed(found.job.kind).singular}.${found.job.status}`,
      data: jobJson(found),
    };
  };
}

/** Sends due deliveries every `everyMs`; stop() ends it (a delivery in flight finishes). */
export class WebhookDispatcher {
  readonly #db: Store;
  readonly #settings: WebhookSettings;
  readonly #payload: WebhookPayload;
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | null = null;
  #busy: Promise<void> | null = null;

  constructor(
    db: Store,
    settings: WebhookSettings,
    payload: WebhookPayload,
    log: (line: string) => void = () => {},
  ) {
    this.#db = db;
    this.#settings = settings;
    this.#payload = payload;
    this.#log = log;
  }

  start(everyMs = 250): void {
    if (this.#timer || this.#settings.secret === null) return;
    this.#timer = setInterval(() => {
      this.#busy ??= this.tick()
        .catch((err: Error) => this.#log(`diffusable: webhooks: ${err.message}`))
        .finally(() => {
          this.#busy = null;
        });
    }, everyMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#busy;
  }

  /** Sends every delivery that is due and whose job is over. */
  async tick(): Promise<void> {
    const due = await this.#db.dueWebhooks(new Date(), 20);
    for (const row of due) {
      const event = await this.#payload(row.jobId);
      if (event === "active") continue;
      if (event === null) {
        await this.#set(row.id, {
          status: "failed",
          lastError: "the job was deleted before delivery",
        });
        continue;
      }
      const error = await this.#send(row.id, row.url, event);
      const attempts = row.attempts + 1;
      if (error === null) {
        await this.#set(row.id, {
          status: "delivered",
          attempts,
          deliveredAt: new Date(),
          lastError: null,
        });
      } else if (attempts >= MAX_ATTEMPTS) {
        await this.#set(row.id, { status: "failed", attempts, lastError: error });
        this.#log(
          `diffusable: webhook ${row.id} for ${row.jobId} failed ${attempts} times: ${error}`,
        );
      } else {
        const delay = this.#settings.retryMs * 2 ** (attempts - 1);
        await this.#set(row.id, {
          attempts,
          lastError: error,
          nextAttemptAt: new Date(Date.now() + delay),
        });
      }
    }
  }

  async #set(id: string, values: WebhookValues): Promise<void> {
    await this.#db.setWebhook(id, values);
  }

  /** One attempt; null on a 2xx answer, else why not. */
  async #send(
    id: string,
    url: string,
    event: { type: string; data: Record<string, unknown> },
  ): Promise<string | null> {
    const target = new URL(url);
    const host = target.hostname.replace(/^\[|\]$/g, "");
    // A name is checked by publicOnlyLookup, on the addresses the connection will use.
    if (!this.#settings.allowPrivate && isPrivateAddress(host)) {
      return `${host} is a loopback or private address; refused`;
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({
      type: event.type,
      timestamp: new Date(timestamp * 1000).toISOString(),
      data: event.data,
    });
    try {
      const status = await post(
        target,
        body,
        {
          "content-type": "application/json",
          "user-agent": "diffusable-webhooks",
          "webhook-id": id,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signWebhook(this.#settings.secret as string, id, timestamp, body),
        },
        this.#settings.allowPrivate ? undefined : publicOnlyLookup,
      );
      return status >= 200 && status < 300 ? null : `the receiver answered ${status}`;
    } catch (err) {
      return (err as Error).message;
    }
  }
}

/** dns.lookup that fails when a name resolves to any loopback or private address. */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true } as LookupAllOptions, (err, addresses) => {
    if (err) return callback(err, "", 0);
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad) {
      const refused = Object.assign(
        new Error(`${hostname} resolves to a private address (${bad.address}); refused`),
        { code: "EPRIVATE" },
      );
      return callback(refused, "", 0);
    }
    if ((options as { all?: boolean }).all) {
      (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    } else {
      const first = addresses[0] as LookupAddress;
      callback(null, first.address, first.family);
    }
  });
};

/** POSTs body to url (no redirects followed) and resolves with the status once the answer is read. */
function post(
  url: URL,
  body: string,
  headers: Record<string, string>,
  lookupFn: LookupFunction | undefined,
): Promise<number> {
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: "POST",
        agent: false, // a fresh connection each time, made through lookupFn
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        signal: AbortSignal.timeout(TIMEOUT_MS),
        ...(lookupFn ? { lookup: lookupFn } : {}),
      },
      (res: IncomingMessage) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
