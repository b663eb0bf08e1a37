// Webhooks against a real local receiver that verifies the Standard Webhooks signature: a job
// and a generation call their webhook once over, a failed delivery is retried (same webhook-id),
// a pending delivery survives a restart, and bad URLs (not http(s), loopback/private without
// DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE, no secret configured) are 400s naming `webhook`. The
// private-address check is table-driven over every spelling of an address (IPv4-mapped,
// -compatible and -translated IPv6, NAT64, 6to4, unique-local, link-local, decimal, octal and hex
// IPv4), at submission (the two requests of issue 22 included) and at delivery, after DNS.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { eq } from "drizzle-orm";
import { startServer } from "../../src/server/serve.ts";
import {
  checkWebhookUrl,
  isPrivateAddress,
  WebhookDispatcher,
  type WebhookSettings,
} from "../../src/server/webhooks.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { insertJob } from "../../src/store/job-rows.ts";
import { webhooks } from "../../src/store/schema.ts";
import { sqliteStore } from "../../src/store/sqlite-store.ts";
import { ffmpegMake } from "./media.ts";
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

async function serverOn(dataDir: string, env: Record<string, string> = ENV) {
  const config = testConfig(dataDir, env);
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

    // Image-to-video (multipart): the webhook field of the form, the same delivery.
    const picture = ffmpegMake([
      "-f",
      "lavfi",
      "-i",
      "mandelbrot=size=40x40:end_pts=1",
      "-frames:v",
      "1",
      join(dir, "p.png"),
    ]);
    const i2v = new FormData();
    for (const [k, v] of Object.entries({
      model: MODEL,
      label: "a",
      steps: "1",
      frames: "5",
      format: "npy",
      webhook: hookUrl,
    })) {
      i2v.append(k, v);
    }
    i2v.append("image", new Blob([readFileSync(picture)]), "p.png");
    const fromImage = await fetch(`${s.url}/v1/generations`, {
      method: "POST",
      headers: auth(s.user),
      body: i2v,
    });
    assert.equal(fromImage.status, 202, await fromImage.clone().text());
    const gi = (await fromImage.json()) as { id: string };
    const di = await until("the image-to-video generation's delivery", () =>
      deliveries.find((x) => x.body.includes(gi.id)),
    );
    assert.ok(di.valid);
    const payload = JSON.parse(di.body) as {
      type: string;
      data: { options: { input: { kind: string } } };
    };
    assert.equal(payload.type, "generation.succeeded");
    assert.equal(payload.data.options.input.kind, "image");
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

// ------------------------------------------------------------ every spelling of an address

/** Addresses as a resolver may return them, or as a raw host: [address, private?]. */
const ADDRESSES: [string, boolean][] = [
  // IPv4, dotted and in inet_aton's other forms
  ["127.0.0.1", true],
  ["127.255.255.254", true],
  ["2130706433", true],
  ["017700000001", true],
  ["0x7f000001", true],
  ["0x7f.1", true],
  ["0177.0.0.1", true],
  ["127.1", true],
  ["0.0.0.0", true],
  ["0", true],
  ["10.1.2.3", true],
  ["012.1.2.3", true],
  ["172.16.0.1", true],
  ["172.31.255.255", true],
  ["192.168.1.1", true],
  ["0xc0.0xa8.1.1", true],
  ["169.254.169.254", true],
  ["2852039166", true],
  ["100.64.0.1", true],
  ["100.127.255.255", true],
  ["192.0.0.8", true],
  ["198.18.0.1", true],
  ["224.0.0.1", true],
  ["255.255.255.255", true],
  ["8.8.8.8", false],
  ["134744072", false],
  ["172.32.0.1", false],
  ["172.15.255.255", false],
  ["100.128.0.1", false],
  ["1.1.1.1", false],
  // IPv6 loopback, unspecified, IPv4-compatible (::/96)
  ["::1", true],
  ["0:0:0:0:0:0:0:1", true],
  ["::", true],
  ["::7f00:1", true],
  ["::127.0.0.1", true],
  ["::808:808", true],
  // IPv4-mapped (::ffff:0:0/96) and IPv4-translated (::ffff:0:0:0/96)
  ["::ffff:127.0.0.1", true],
  ["::ffff:7f00:1", true],
  ["::FFFF:7F00:1", true],
  ["0:0:0:0:0:ffff:7f00:1", true],
  ["::ffff:a9fe:a9fe", true],
  ["::ffff:169.254.169.254", true],
  ["::ffff:a00:1", true],
  ["::ffff:c0a8:101", true],
  ["::ffff:0:0", true],
  ["::ffff:0:7f00:1", true],
  ["::ffff:8.8.8.8", false],
  ["::ffff:808:808", false],
  // NAT64 (64:ff9b::/96 judged by its IPv4; the local-use 64:ff9b:1::/48 refused)
  ["64:ff9b::7f00:1", true],
  ["64:ff9b::127.0.0.1", true],
  ["64:ff9b::a9fe:a9fe", true],
  ["64:ff9b::a00:1", true],
  ["64:ff9b:1::808:808", true],
  ["64:ff9b::808:808", false],
  // 6to4 (2002::/16, judged by its IPv4), Teredo and the IETF block (2001::/23), documentation
  ["2002:7f00:1::1", true],
  ["2002:a9fe:a9fe::", true],
  ["2002:808:808::1", false],
  ["2001::1", true],
  ["2001:0:4136:e378:8000:63bf:3fff:fdd2", true],
  ["2001:db8::1", true],
  // unique-local, link-local, site-local, multicast, outside global unicast
  ["fc00::1", true],
  ["fd12:3456:789a::1", true],
  ["FDFF:ffff::1", true],
  ["fe80::1", true],
  ["fe80::1%eth0", true],
  ["febf::1", true],
  ["fec0::1", true],
  ["ff02::1", true],
  ["100::1", true],
  ["1::", true],
  ["4000::1", true],
  ["2606:4700:4700::1111", false],
  ["2a00:1450:4001::200e", false],
  ["[2606:4700:4700::1111]", false],
  ["[::1]", true],
  // not an address at all: the name check and DNS decide
  ["example.com", false],
];

test("isPrivateAddress: every spelling of a loopback, private, link-local or unique-local address", () => {
  const wrong = ADDRESSES.filter(([a, want]) => isPrivateAddress(a) !== want).map(
    ([a, want]) => `${a} should be ${want ? "refused" : "allowed"}`,
  );
  assert.deepEqual(wrong, []);
});

const SETTINGS: WebhookSettings = { secret: SECRET, allowPrivate: false, retryMs: 100 };

/** Webhook URLs as users type them: [url, refused?]. */
const URLS: [string, boolean][] = [
  ["http://[::ffff:127.0.0.1]:8080/hook", true],
  ["http://[::ffff:7f00:1]:8080/", true],
  ["http://[0:0:0:0:0:ffff:127.0.0.1]/", true],
  ["http://[::ffff:169.254.169.254]/latest/meta-data", true],
  ["http://[::ffff:a9fe:a9fe]/", true],
  ["http://[::127.0.0.1]/", true],
  ["http://[::7f00:1]/", true],
  ["http://[::ffff:0:127.0.0.1]/", true],
  ["http://[64:ff9b::127.0.0.1]/", true],
  ["http://[64:ff9b::a9fe:a9fe]/", true],
  ["http://[64:ff9b::10.0.0.1]/", true],
  ["http://[2002:7f00:1::]/", true],
  ["http://[fc00::1]/", true],
  ["http://[fd00:ec2::254]/", true],
  ["http://[fe80::1]/", true],
  ["http://[fe80::a9fe:a9fe]/", true],
  ["http://[::]/", true],
  ["http://[::1]:9/x", true],
  ["http://[ff02::1]/", true],
  ["http://127.0.0.1:9/x", true],
  ["http://2130706433/", true],
  ["http://017700000001/", true],
  ["http://0x7f000001/", true],
  ["http://0x7f.1/", true],
  ["http://0177.0.0.1/", true],
  ["http://127.1/", true],
  ["http://0/", true],
  ["http://0.0.0.0/", true],
  ["http://10.1.2.3/x", true],
  ["http://0xa.1.2.3/", true],
  ["http://169.254.169.254/", true],
  ["http://2852039166/", true],
  ["http://192.168.0.1/", true],
  ["http://172.16.0.1/", true],
  ["http://100.64.0.1/", true],
  ["http://localhost/", true],
  ["http://LOCALHOST:8080/", true],
  ["http://localhost./", true],
  ["http://api.localhost/", true],
  ["https://8.8.8.8/hook", false],
  ["http://134744072/", false],
  ["http://[::ffff:8.8.8.8]/", false],
  ["http://[64:ff9b::8.8.8.8]/", false],
  ["http://[2606:4700:4700::1111]/", false],
  ["https://example.com/hook", false],
  ["https://hooks.localhost.example.com/", false],
];

test("checkWebhookUrl: refuses every spelling of a loopback or private address, naming webhook", () => {
  const wrong: string[] = [];
  for (const [url, refused] of URLS) {
    let message: string | null = null;
    try {
      checkWebhookUrl(url, SETTINGS);
    } catch (err) {
      message = (err as Error).message;
      const status = (err as { status?: number }).status;
      if (status !== 400 || !/^webhook points at a loopback or private address/.test(message)) {
        wrong.push(`${url}: ${status} ${message}`);
      }
    }
    if ((message !== null) !== refused)
      wrong.push(`${url} should be ${refused ? "refused" : "accepted"}`);
    // DIFFUSABLE_WEBHOOK_ALLOW_PRIVATE lets every one of them through.
    assert.doesNotThrow(() => checkWebhookUrl(url, { ...SETTINGS, allowPrivate: true }), url);
  }
  assert.deepEqual(wrong, []);
});

test("the two [::ffff:...] requests of issue 22 are 400s naming webhook, and nothing is delivered", async () => {
  const dir = tempDir("webhooks-mapped");
  const s = await serverOn(dir, {
    DIFFUSABLE_WEBHOOK_SECRET: SECRET,
    DIFFUSABLE_WEBHOOK_RETRY_MS: "100",
  });
  const port = (receiver.address() as AddressInfo).port;
  const before = deliveries.length;
  try {
    const gen = await fetch(`${s.url}/v1/generations`, {
      method: "POST",
      headers: { ...auth(s.user), "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        label: "a",
        webhook: `http://[::ffff:127.0.0.1]:${port}/hook`,
      }),
    });
    const genBody = (await gen.json()) as { error: { code: string; message: string } };
    assert.equal(gen.status, 400, JSON.stringify(genBody));
    assert.equal(genBody.error.code, "invalid_field");
    assert.match(genBody.error.message, /^webhook points at a loopback or private address/);

    const form = new FormData();
    form.append("model", MODEL);
    form.append("webhook", `http://[::ffff:7f00:1]:${port}/`);
    form.append("files", new Blob([clip]), "clip.mp4");
    const enc = await fetch(`${s.url}/v1/encodings`, {
      method: "POST",
      headers: auth(s.user),
      body: form,
    });
    const encBody = (await enc.json()) as { error: { code: string; message: string } };
    assert.equal(enc.status, 400, JSON.stringify(encBody));
    assert.equal(encBody.error.code, "invalid_field");
    assert.match(encBody.error.message, /^webhook points at a loopback or private address/);

    const listed = await fetch(`${s.url}/v1/encodings`, { headers: auth(s.user) });
    assert.deepEqual(((await listed.json()) as { jobs: unknown[] }).jobs, [], "no job was made");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(deliveries.length, before, "nothing reached the receiver");
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("at delivery: a stored private URL and a name that resolves to loopback are refused, after DNS", async () => {
  const dir = tempDir("webhooks-delivery");
  const db = openDb(join(dir, "db.sqlite"));
  const port = (receiver.address() as AddressInfo).port;
  answer = () => 200;
  const before = deliveries.length;
  try {
    // Rows as an older server stored them (its submit check let these through), and a name.
    const urls = {
      msg_mapped: `http://[::ffff:7f00:1]:${port}/hook`,
      msg_nat64: `http://[64:ff9b::7f00:1]:${port}/hook`,
      msg_localhost: `http://localhost:${port}/hook`,
    };
    for (const [id, url] of Object.entries(urls)) {
      insertJob(db, {
        id: `gen_${id}`,
        kind: "generate",
        keyId: null,
        model: "m",
        options: {},
        items: [],
      });
      db.insert(webhooks)
        .values({ id, jobId: `gen_${id}`, url })
        .run();
    }
    const event = async (jobId: string) => ({
      type: "generation.succeeded",
      data: { id: jobId, status: "succeeded" },
    });
    const dispatcher = new WebhookDispatcher(sqliteStore(db), SETTINGS, event);
    await dispatcher.tick();
    const rows = new Map(
      db
        .select()
        .from(webhooks)
        .all()
        .map((r) => [r.id, r]),
    );
    for (const row of rows.values()) assert.equal(row.attempts, 1, row.id);
    assert.match(String(rows.get("msg_mapped")?.lastError), /loopback or private address; refused/);
    assert.match(String(rows.get("msg_nat64")?.lastError), /loopback or private address; refused/);
    // The name is refused on its DNS answer (127.0.0.1 or ::1), in the connection's own lookup.
    assert.match(
      String(rows.get("msg_localhost")?.lastError),
      /^localhost resolves to a private address \((127\.0\.0\.1|::1)\); refused$/,
    );
    assert.equal(deliveries.length, before, "nothing reached the receiver");

    // The control: the same receiver, allowed, is reached through the same code.
    const allowed = new WebhookDispatcher(
      sqliteStore(db),
      { ...SETTINGS, allowPrivate: true },
      event,
    );
    db.update(webhooks).set({ status: "failed" }).where(eq(webhooks.id, "msg_nat64")).run();
    db.update(webhooks)
      .set({ nextAttemptAt: new Date(0) })
      .run();
    await allowed.tick();
    const reached = deliveries.slice(before).map((d) => JSON.parse(d.body).data.id as string);
    assert.deepEqual(reached.sort(), ["gen_msg_localhost", "gen_msg_mapped"]);
  } finally {
    closeDb(db);
    rmSync(dir, { recursive: true, force: true });
  }
});
