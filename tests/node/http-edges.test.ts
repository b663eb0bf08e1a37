// The edges of HTTP through a real server process: headers too large (431 with the JSON error
// body, not node's empty one), a method a path does not allow (405 with Allow), a urlencoded form
// sent to /v1/generations (415; JSON and multipart work), a multipart field given twice (400
// naming it), and a client that disconnects mid-request (one line in the server's log, no stack).

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type ServeProcess, spawnServe } from "../../src/server/serve-process.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { auth, fixtureModelsDir, MODEL, makeVideo, tempDir } from "./server-helpers.ts";

const dir = tempDir("http-edges");
let server: ServeProcess;
let key = "";

before(async () => {
  mkdirSync(dir, { recursive: true });
  const db = openDb(join(dir, "diffusable.sqlite"));
  key = createKey(db, "user", "user").secret;
  closeDb(db);
  server = await spawnServe({
    dataDir: dir,
    modelsDir: fixtureModelsDir(),
    env: { DIFFUSABLE_RUNS_IMPORT_DIR: "" },
    captureStderr: true,
    timeoutMs: 120_000,
  });
});
after(() => {
  server?.child.kill("SIGKILL");
});

type ErrorBody = { error: { code: string; message: string } };

test("a 100 KB Authorization header: 431 with a JSON error body", async () => {
  const res = await fetch(`${server.url}/v1/models`, {
    headers: { authorization: `Bearer ${"x".repeat(100_000)}` },
  });
  assert.equal(res.status, 431);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await res.json()) as ErrorBody;
  assert.equal(body.error.code, "headers_too_large");
  assert.match(body.error.message, /^the request's headers are larger than \d+ bytes/);
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200, "the server still serves");
});

test("a method the path does not allow: 405 with Allow; an unknown path stays 404", async () => {
  for (const [method, path, allow] of [
    ["PUT", "/v1/encodings", "GET, HEAD, POST"],
    ["PATCH", "/v1/generations/gen_x", "DELETE, GET, HEAD"],
    ["DELETE", "/v1/models", "GET, HEAD"],
    ["POST", "/healthz", "GET, HEAD"],
    ["PUT", "/v1/decodings/dec_x/items/0/video", "GET, HEAD"],
  ] as const) {
    const res = await fetch(`${server.url}${path}`, { method, headers: auth(key) });
    const body = (await res.json()) as ErrorBody;
    assert.equal(res.status, 405, `${method} ${path}: ${JSON.stringify(body)}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    assert.equal(body.error.code, "method_not_allowed");
    assert.equal(body.error.message, `${method} is not allowed on ${path}; it allows ${allow}`);
  }
  const missing = await fetch(`${server.url}/v1/nothing`, { method: "PUT", headers: auth(key) });
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as ErrorBody).error.code, "not_found");
  // Without a key, a /v1 path is a 401 whatever the method.
  assert.equal((await fetch(`${server.url}/v1/encodings`, { method: "PUT" })).status, 401);
});

test("a urlencoded form sent to /v1/generations is a 415; multipart (image-to-video's form) and JSON work", async () => {
  const form = new FormData();
  for (const [k, v] of Object.entries({ model: MODEL, label: "a", steps: "1", format: "npy" })) {
    form.append(k, v);
  }
  const multipart = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    headers: auth(key),
    body: form,
  });
  assert.equal(multipart.status, 202, await multipart.clone().text());
  const urlencoded = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    headers: { ...auth(key), "content-type": "application/x-www-form-urlencoded" },
    body: "label=a",
  });
  assert.equal(urlencoded.status, 415);
  const body = (await urlencoded.json()) as ErrorBody;
  assert.equal(body.error.code, "unsupported_media_type");
  assert.equal(
    body.error.message,
    'a generation is a JSON body (content-type: application/json), or multipart/form-data with an image or video, got "application/x-www-form-urlencoded"',
  );
  const json = await fetch(`${server.url}/v1/generations`, {
    method: "POST",
    headers: { ...auth(key), "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify({ model: MODEL, label: "a", steps: 1, format: "npy" }),
  });
  assert.equal(json.status, 202, await json.clone().text());
});

test("a multipart field given twice is a 400 naming it, not the last value silently", async () => {
  const clip = readFileSync(makeVideo(join(dir, "clip.mp4"), { seconds: 2 }));
  const form = new FormData();
  form.append("model", MODEL);
  form.append("mode", "whole");
  form.append("mode", "clip");
  form.append("files", new Blob([new Uint8Array(clip)]), "clip.mp4");
  const res = await fetch(`${server.url}/v1/encodings`, {
    method: "POST",
    headers: auth(key),
    body: form,
  });
  const body = (await res.json()) as ErrorBody;
  assert.equal(res.status, 400, JSON.stringify(body));
  assert.equal(body.error.code, "invalid_field");
  assert.equal(body.error.message, "mode is given more than once; give it once");
});

test("a client that disconnects mid-upload: one log line, no stack", async () => {
  const port = Number(new URL(server.url).port);
  const before = server.log().length;
  const b = "XyZ";
  await new Promise<void>((resolve) => {
    const sock = connect(port, "127.0.0.1", () => {
      sock.write(
        `POST /v1/encodings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
          `Content-Type: multipart/form-data; boundary=${b}\r\nContent-Length: 100000\r\n\r\n` +
          `--${b}\r\nContent-Disposition: form-data; name="files"; filename="a.mp4"\r\n\r\nabcd`,
      );
      setTimeout(() => {
        sock.resetAndDestroy();
        resolve();
      }, 300);
    });
    sock.on("error", () => {});
  });
  const deadline = Date.now() + 10_000;
  while (!server.log().slice(before).includes("\n") && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 300));
  const lines = server.log().slice(before).split("\n").filter(Boolean);
  assert.deepEqual(lines, ["POST /v1/encodings: the client closed the connection (ECONNRESET)"]);
});
