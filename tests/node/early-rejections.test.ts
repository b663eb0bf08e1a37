// Answers that come before the upload is read (401 wrong key, 413 too large, 415 wrong type, 429
// too many jobs) reach real clients that are still sending a few MB: Node's fetch (undici), curl
// and Python's requests all get the status and the JSON body, not EPIPE or a reset.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { spawnServe } from "../../src/server/serve-process.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { auth, MODEL, makeVideo, tempDir, tempFilesUnder, testConfig } from "./server-helpers.ts";

const run = promisify(execFile);
const MAX_BYTES = 3 * 1024 * 1024;
const work = tempDir("early");
const big = randomBytes(4_500_000); // 4.5 MB: over MAX_BYTES
const fits = randomBytes(2_500_000); // under MAX_BYTES, still several socket buffers

/** The server in its own process, as deployed (in-process, the kernel's buffers hide the bug). */
let s: { url: string; user: string; dataDir: string; close(): Promise<void> };

before(async () => {
  const config = testConfig(tempDir("early-server"), {});
  mkdirSync(config.dataDir, { recursive: true });
  const db = openDb(config.dbFile);
  const user = createKey(db, "user", "user").secret;
  closeDb(db);
  const { child, url } = await spawnServe({
    dataDir: config.dataDir,
    modelsDir: config.modelsDir,
    env: {
      DIFFUSABLE_THREADS: "1",
      DIFFUSABLE_JOB_CONCURRENCY: "1",
      DIFFUSABLE_RUNS_IMPORT_DIR: "",
      DIFFUSABLE_MAX_UPLOAD_BYTES: String(MAX_BYTES),
      DIFFUSABLE_MAX_ACTIVE_JOBS: "1",
    },
  });
  s = {
    url,
    user,
    dataDir: config.dataDir,
    async close() {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
      rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
});
after(() => s.close());

function form(bytes: Uint8Array): FormData {
  const f = new FormData();
  f.append("model", MODEL);
  f.append("files", new Blob([bytes]), "clip.mp4");
  return f;
}

async function viaFetch(init: RequestInit, path = "/v1/encodings") {
  const res = await fetch(`${s.url}${path}`, { method: "POST", ...init });
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, code: body.error?.code, message: body.error?.message };
}

/** curl, asynchronously: the server runs in this process, so a spawnSync would block it. */
async function viaCurl(args: string[], path = "/v1/encodings") {
  const r = await run(
    "curl",
    ["-sS", "-o", "-", "-w", "\n%{http_code}", ...args, `${s.url}${path}`],
    {
      encoding: "utf8",
      timeout: 60_000,
    },
  );
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  const body = JSON.parse(lines.join("\n")) as { error: { code: string } };
  return { status, code: body.error.code };
}

/** Python's requests (the third client), in a subprocess. */
async function viaRequests(secret: string, file: string, path = "/v1/encodings") {
  const script = [
    "import json, sys, requests",
    "r = requests.post(sys.argv[1], headers={'authorization': 'Bearer ' + sys.argv[2]},",
    "                  files={'files': ('clip.mp4', open(sys.argv[3], 'rb'))}, data={'model': sys.argv[4]})",
    "print(json.dumps({'status': r.status_code, 'code': r.json()['error']['code']}))",
  ].join("\n");
  const r = await run("/usr/bin/python3", ["-c", script, `${s.url}${path}`, secret, file, MODEL], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return JSON.parse(r.stdout) as { status: number; code: string };
}

const bigFile = join(work, "big.bin");
const fitsFile = join(work, "fits.bin");
writeFileSync(bigFile, big);
writeFileSync(fitsFile, fits);

test("401 for a wrong key reaches fetch and curl while they upload", async () => {
  for (const bytes of [fits, big]) {
    const r = await viaFetch({ headers: auth("wrong"), body: form(bytes) });
    assert.deepEqual([r.status, r.code], [401, "invalid_api_key"]);
  }
  const missing = await viaFetch({ body: form(fits) });
  assert.deepEqual([missing.status, missing.code], [401, "missing_api_key"]);
  const c = await viaCurl(["-H", "authorization: Bearer wrong", "-F", `files=@${fitsFile}`]);
  assert.deepEqual([c.status, c.code], [401, "invalid_api_key"]);
  const p = await viaRequests("wrong", bigFile);
  assert.deepEqual([p.status, p.code], [401, "invalid_api_key"]);
});

test("413 for a body over the limit reaches fetch and curl", async () => {
  // Declared by Content-Length (fetch of a FormData sends it) ...
  const r = await viaFetch({ headers: auth(s.user), body: form(big) });
  assert.deepEqual([r.status, r.code], [413, "payload_too_large"]);
  // ... and found while streaming a chunked body (no Content-Length).
  const chunked = new Blob([big]).stream();
  const boundary = "xyzzy";
  const head = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${MODEL}\r\n--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.mp4"\r\n\r\n`,
  );
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(head);
      const reader = chunked.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        controller.enqueue(value);
      }
      controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
      controller.close();
    },
  });
  const res = await fetch(`${s.url}/v1/encodings`, {
    method: "POST",
    headers: { ...auth(s.user), "content-type": `multipart/form-data; boundary=${boundary}` },
    body: stream,
    duplex: "half",
  } as RequestInit);
  const body = (await res.json()) as { error: { code: string } };
  assert.deepEqual([res.status, body.error.code], [413, "payload_too_large"]);
  const c = await viaCurl(["-H", `authorization: Bearer ${s.user}`, "-F", `files=@${bigFile}`]);
  assert.deepEqual([c.status, c.code], [413, "payload_too_large"]);
  const p = await viaRequests(s.user, bigFile);
  assert.deepEqual([p.status, p.code], [413, "payload_too_large"]);
  assert.deepEqual(tempFilesUnder(s.dataDir), []);
});

test("415 for a body that is not multipart reaches fetch and curl", async () => {
  const r = await viaFetch({
    headers: { ...auth(s.user), "content-type": "application/octet-stream" },
    body: fits,
  });
  assert.deepEqual([r.status, r.code], [415, "unsupported_media_type"]);
  const c = await viaCurl([
    "-H",
    `authorization: Bearer ${s.user}`,
    "-H",
    "content-type: application/octet-stream",
    "--data-binary",
    `@${fitsFile}`,
  ]);
  assert.deepEqual([c.status, c.code], [415, "unsupported_media_type"]);
});

test("429 for too many active jobs reaches fetch and curl", async () => {
  const long = readFileSync(makeVideo(join(work, "long.mp4"), { seconds: 30, fps: 8 }));
  const first = await fetch(`${s.url}/v1/reconstructions`, {
    method: "POST",
    headers: auth(s.user),
    body: form(long),
  });
  assert.equal(first.status, 202, await first.clone().text());
  const { id } = (await first.json()) as { id: string };
  const r = await viaFetch({ headers: auth(s.user), body: form(fits) });
  assert.deepEqual([r.status, r.code], [429, "too_many_jobs"]);
  const c = await viaCurl(["-H", `authorization: Bearer ${s.user}`, "-F", `files=@${fitsFile}`]);
  assert.deepEqual([c.status, c.code], [429, "too_many_jobs"]);
  await fetch(`${s.url}/v1/reconstructions/${id}/cancel`, {
    method: "POST",
    headers: auth(s.user),
  });
  // The server still serves on new connections and on kept-alive ones.
  assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
});
