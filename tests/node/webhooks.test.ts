// Webhooks against a real local receiver that verifies the Standard Webhooks signature: a job
// and a generation call their webhook once over, a failed delivery is retried (same webhook-id),
// a pending delivery survives a restart, and bad URLs (not http(s), loopback/private without
// DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE, no secret configured) are 400s naming `webhook`.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startServer } from "../../src/server/serve.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { auth, MODEL, makeVideo, openTestApp, tempDir, testConfig } from "./server-helpers.ts";

const SECRET = `whsec_${Buffer.from("a test secret of 32 bytes.......").toString("base64")}`;
const work = tempDir("webhooks");
const clip = new Uint8Array(readFileSync(makeVideo(join(work, "clip.mp4"), { seconds: 2 })));

interface Delivery {
  id: string;
  timestamp: string;
  body: string;
  valid: boolean;
}

/** A receiver: records every delivery, verifies its signature, answers `answer()`. */
let answer: () => number = () => 200;
const deliveries: Delivery[] = [];
const receiver = createServer(async (req: IncomingMessage, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  const id = String(req.headers["webhook-id"]);
  const timestamp = String(req.headers["webhook-timestamp"]);
  const key = Buffer.from(SECRET.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  const signatures = String(req.headers["webhook-signature"]).split(" ");
  deliveries.push({ id, timestamp, body, valid: signatures.includes(`v1,${expected}`) });
  res.statusCode = answer();
  res.end();
});
let hookUrl = "";
before(async () => {
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
after(() => new Promise<void>((r) => receiver.close(() => r())));

const ENV = {
  DIFFUSABLE_WEBHOOK_SECRET: SECRET,
  DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE: "1",
  DIFFUSABLE_WEBHOOK_RETRY_MS: "100",
};

async function serverOn(dataDir: string) {
  const config = testConfig(dataDir, ENV);
  mkdirSync(config.dataDir, { recursive: true });
  const db = openDb(config.dbFile);
  const user = createKey(db, "user", "user").secret;
  closeDb(db);
  const server = await startServer(config, () => {});
  return { ...server, user };
}

async function until<T>(what: string, f: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("a job and a generation call their webhook once over; a failure is retried, signed alike", async () => {
  const dir = tempDir("webhooks-a");
  const s = await serverOn(dir);
  try {
    let calls = 0;
    answer = () => (++calls === 1 ? 500 : 200);
    const form = new FormData();
    form.append("model", MODEL);
    form.append("webhook", hookUrl);
    form.append("files", new Blob([clip]), "clip.mp4");
    const res = await fetch(`${s.url}/v1/encodings`, {
      method: "POST",
      headers: auth(s.user),
      body: form,
    });
    assert.equal(res.status, 202, await res.clone().text());
    const job = (await res.json()) as { id: string; options: Record<string, unknown> };
    assert.equal(job.options.webhook, undefined, "the URL is not an option of the job");
    const mine = () => deliveries.filter((d) => d.body.includes(job.id));
    await until("two deliveries", () => (mine().length >= 2 ? true : undefined));
    const [first, second] = mine() as [Delivery, Delivery];
    assert.ok(first.valid && second.valid, "signatures verify");
    assert.equal(first.id, second.id, "a retry keeps its webhook-id");
    const body = JSON.parse(second.body) as { type: string; data: { id: string; status: string } };
    assert.equal(body.type, "encoding.succeeded");
    assert.equal(body.data.id, job.id);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(mine().length, 2, "delivered once it got a 2xx");

    answer = () => 200;
    const gen = await fetch(`${s.url}/v1/generations`, {
      method: "POST",
      headers: { ...auth(s.user), "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, label: "a", steps: 1, format: "npy", webhook: hookUrl }),
    });
    const g = (await gen.json()) as { id: string };
    const d = await until("the generation's delivery", () =>
      deliveries.find((x) => x.body.includes(g.id)),
    );
    assert.ok(d.valid);
    assert.equal((JSON.parse(d.body) as { type: string }).type, "generation.succeeded");
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a pending delivery survives a restart", async () => {
  const dir = tempDir("webhooks-b");
  answer = () => 503;
  let s = await serverOn(dir);
  let jobId = "";
  try {
    const form = new FormData();
    form.append("model", MODEL);
    form.append("webhook", hookUrl);
    form.append("files", new Blob([clip]), "clip.mp4");
    const res = await fetch(`${s.url}/v1/encodings`, {
      method: "POST",
      headers: { ...auth(s.user), prefer: "wait=60" },
      body: form,
    });
    jobId = ((await res.json()) as { id: string }).id;
    await until("a failed attempt", () =>
      deliveries.some((d) => d.body.includes(jobId)) ? true : undefined,
    );
  } finally {
    await s.close();
  }
  answer = () => 200;
  const before = deliveries.filter((d) => d.body.includes(jobId)).length;
  s = await serverOn(dir);
  try {
    await until("the delivery after the restart", () =>
      deliveries.filter((d) => d.body.includes(jobId)).length > before ? true : undefined,
    );
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad webhook URLs are 400s naming webhook", async () => {
  for (const [env, url, pattern] of [
    [{}, "https://example.com/hook", /DIFFUSABLE_WEBHOOK_SECRET is not set/],
    [{ DIFFUSABLE_WEBHOOK_SECRET: SECRET }, "ftp://example.com/x", /http or https/],
    [{ DIFFUSABLE_WEBHOOK_SECRET: SECRET }, "not a url", /absolute http\(s\) URL/],
    [{ DIFFUSABLE_WEBHOOK_SECRET: SECRET }, "http://127.0.0.1:9/x", /loopback or private/],
    [{ DIFFUSABLE_WEBHOOK_SECRET: SECRET }, "http://10.1.2.3/x", /loopback or private/],
    [{ DIFFUSABLE_WEBHOOK_SECRET: SECRET }, "http://[::1]/x", /loopback or private/],
  ] as const) {
    const t = await openTestApp(env);
    try {
      const res = await t.app.request("/v1/generations", {
        method: "POST",
        headers: { ...auth(t.user), "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, label: "a", webhook: url }),
      });
      assert.equal(res.status, 400, url);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "invalid_field");
      assert.match(body.error.message, /^webhook /);
      assert.match(body.error.message, pattern);
    } finally {
      await t.close();
    }
  }
});
