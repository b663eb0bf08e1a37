// Early answers to a request whose body is still coming (401, 413, 415, 429 before an upload is
// read): if the server answered and closed the socket at once, a client still writing its body
// gets EPIPE or a reset instead of the answer (Node's fetch does; curl happens not to). So the
// rest of the body is read and discarded first, up to a bound in bytes and in time; only a body
// beyond that bound is cut off (and the answer says Connection: close).

import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import type { ReadableStream as NodeWebStream } from "node:stream/web";
import type { Context } from "hono";

/** Most bytes read and discarded after an early answer. */
export const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;
/** Longest time spent discarding, in ms. */
export const DRAIN_LIMIT_MS = 30_000;

/**
 * The request's Node stream (@hono/node-server's c.env.incoming) while nothing has read it or
 * made a web stream of it (which listens for its data); else null. Reading it directly skips the
 * web ReadableStream a Request body makes of it and, for busboy, the Node stream made back from
 * that: per chunk, two layers of bookkeeping on the event loop (bench:request-cost).
 */
function untouchedIncoming(c: Context): IncomingMessage | null {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming || incoming.readableDidRead || incoming.listenerCount("data") > 0) return null;
  return incoming;
}

/** The request body as a Node stream (null: no body): the request's own where it is untouched,
 * else one made from the Request's web stream (app.request() in tests has no Node request). */
export function bodyStream(c: Context): Readable | null {
  const incoming = untouchedIncoming(c);
  if (incoming) return incoming;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as unknown as NodeWebStream) : null;
}

/** drainBody for a context: the Node request directly where nothing has read it. */
export function drainRequest(c: Context): Promise<boolean> {
  const incoming = untouchedIncoming(c);
  if (!incoming) return drainBody(c.req.raw);
  const declared = Number(incoming.headers["content-length"]);
  if (Number.isFinite(declared) && declared > DRAIN_LIMIT_BYTES) return Promise.resolve(false);
  return drainStream(incoming, 0);
}

/**
 * Reads and discards what is left of a request body that nobody has read; true when the whole
 * body was consumed (the connection can be kept), false when it was cut off at a bound or the body
 * was already taken by someone else.
 */
export async function drainBody(request: Request, alreadyRead = 0): Promise<boolean> {
  const body = request.body;
  if (body === null) return true;
  if (request.bodyUsed || body.locked) return false;
  const declared = Number(request.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > DRAIN_LIMIT_BYTES) return false;
  const reader = body.getReader();
  let total = alreadyRead;
  const deadline = setTimeout(() => void reader.cancel().catch(() => {}), DRAIN_LIMIT_MS);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return true;
      total += value.byteLength;
      if (total > DRAIN_LIMIT_BYTES) {
        await reader.cancel().catch(() => {});
        return false;
      }
    }
  } catch {
    return false;
  } finally {
    clearTimeout(deadline);
  }
}

/** The same for a Node stream (the upload parser's source once it gave up on the body). */
export function drainStream(
  source: NodeJS.ReadableStream & { destroy(): void; readableEnded?: boolean },
  alreadyRead: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    if (source.readableEnded) return resolve(true);
    let total = alreadyRead;
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      source.removeListener("data", onData);
      resolve(ok);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > DRAIN_LIMIT_BYTES) {
        source.destroy();
        finish(false);
      }
    };
    const timer = setTimeout(() => {
      source.destroy();
      finish(false);
    }, DRAIN_LIMIT_MS);
    source.on("data", onData);
    source.once("end", () => finish(true));
    source.once("error", () => finish(false));
    source.once("close", () => finish(source.readableEnded === true));
    source.resume();
  });
}
