// /openapi.json against the app itself: every route of the app is in the document and every
// operation of the document is a route of the app (the /admin page, a browser UI, aside), and a
// route mounted without a definition (a plain app.get) is caught by that check; path
// parameters match; every operation has a unique operationId; and every status that a walk over
// the API answers (success, each 4xx a client can cause, downloads' 206/304) is documented for
// that operation, with the 2xx JSON bodies matching the documented zod schemas.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { z } from "zod";
import { documentedRoutes, openApiDocument } from "../../src/server/openapi.ts";
import {
  JobListSchema,
  JobSchema,
  RunDetailSchema,
  RunListSchema,
} from "../../src/server/schemas.ts";
import { REPO_ROOT } from "./python.ts";
import { auth, MODEL, makeVideo, openTestApp, type TestApp, tempDir } from "./server-helpers.ts";

type Op = {
  operationId?: string;
  parameters?: { name: string; in: string }[];
  responses: Record<string, unknown>;
};
let t: TestApp;
let doc: { paths: Record<string, Record<string, Op>> };
before(async () => {
  t = await openTestApp();
  doc = (await (await t.app.request("/openapi.json")).json()) as typeof doc;
});
after(() => t.close());

const METHODS = new Set(["get", "post", "put", "patch", "delete"]);

function appRoutes(app: { routes: readonly { method: string; path: string }[] } = t.app) {
  const out = new Set<string>();
  for (const r of app.routes) {
    const method = r.method.toLowerCase();
    if (!METHODS.has(method)) continue; // middleware ("ALL")
    if (r.path === "/admin" || r.path.startsWith("/admin/")) continue; // the admin page (HTML)
    const path = r.path.replace(/\/$/, "").replace(/:(\w+)/g, "{$1}") || "/";
    out.add(`${method} ${path}`);
  }
  return out;
}

function docOperations(document: typeof doc = doc): Set<string> {
  const out = new Set<string>();
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const method of Object.keys(methods))
      if (METHODS.has(method)) out.add(`${method} ${path}`);
  }
  return out;
}

test("every route of the app is documented, and every documented operation is a route", () => {
  const routes = appRoutes();
  const documented = docOperations();
  assert.deepEqual(
    [...routes].filter((r) => !documented.has(r)),
    [],
    "routes missing from /openapi.json",
  );
  assert.deepEqual(
    [...documented].filter((r) => !routes.has(r)),
    [],
    "documented but not served",
  );
});

test("a route mounted without a definition is missing from the document, and the check says so", () => {
  // The app and a route added to it the plain Hono way (app.get), not with app.openapi(route()).
  const app = documentedRoutes().route("/", t.app);
  app.get("/v1/undocumented", (c) => c.json({}));
  const document = openApiDocument(app) as unknown as typeof doc;
  const missing = [...appRoutes(app)].filter((r) => !docOperations(document).has(r));
  assert.deepEqual(missing, ["get /v1/undocumented"]);
});

test("path parameters match the template; operationIds are unique", () => {
  const ids = new Set<string>();
  for (const [path, methods] of Object.entries(doc.paths)) {
    const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const [method, op] of Object.entries(methods)) {
      const declared = (op.parameters ?? [])
        .filter((p) => p.in === "path")
        .map((p) => p.name)
        .sort();
      assert.deepEqual(declared, inPath, `${method} ${path}: path parameters`);
      assert.ok(op.operationId, `${method} ${path}: no operationId`);
      assert.ok(!ids.has(op.operationId), `${op.operationId} twice`);
      ids.add(op.operationId);
      assert.ok(op.responses["500"], `${method} ${path}: no 500`);
      if (path.startsWith("/v1/")) assert.ok(op.responses["401"], `${method} ${path}: no 401`);
    }
  }
});

/** The documented operation a concrete request hits. */
function operationOf(method: string, url: string): { key: string; op: Op } {
  const path = url.split("?")[0] as string;
  const candidates = Object.entries(doc.paths)
    .filter(([template]) => new RegExp(`^${template.replace(/\{\w+\}/g, "[^/]+")}$`).test(path))
    // A literal segment beats a parameter (/v1/runs/import vs /v1/runs/{id}).
    .sort(([a], [b]) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
  const hit = candidates.find(([, methods]) => methods[method.toLowerCase()]);
  assert.ok(hit, `${method} ${path} is not documented`);
  return { key: `${method.toLowerCase()} ${hit[0]}`, op: hit[1][method.toLowerCase()] as Op };
}

const seen = new Map<string, Set<string>>();

/** A request through the app whose answer must be documented (and match its schema). */
async function call(
  method: string,
  url: string,
  init: {
    key?: string | null;
    headers?: Record<string, string>;
    body?: RequestInit["body"];
    schema?: z.ZodType;
  } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.key !== null) Object.assign(headers, auth(init.key ?? t.admin));
  const res = await t.app.request(url, {
    method,
    headers,
    ...(init.body ? { body: init.body } : {}),
  });
  const { key, op } = operationOf(method, url);
  const status = String(res.status);
  assert.ok(
    op.responses[status],
    `${key} answered ${status}, which is not documented (${await res.clone().text()})`,
  );
  seen.set(key, (seen.get(key) ?? new Set()).add(status));
  if (init.schema && res.status < 300) init.schema.parse(await res.clone().json());
  return res;
}

const work = tempDir("openapi");
const clip = new Uint8Array(readFileSync(makeVideo(join(work, "clip.mp4"), { seconds: 2 })));
const form = (
  fields: Record<string, string>,
  file: Uint8Array | null = clip,
  name = "clip.mp4",
) => {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  if (file) f.append("files", new Blob([file]), name);
  return f;
};
const jsonBody = (v: unknown) => ({
  headers: { "content-type": "application/json" },
  body: JSON.stringify(v),
});

test("every status the API answers on a walk over it is documented", async () => {
  await call("GET", "/healthz", { key: null });
  await call("GET", "/openapi.json", { key: null });
  await call("GET", "/v1/models");
  await call("GET", "/v1/models", { key: null });
  await call("GET", "/v1/models", { key: "wrong" });
  for (const resource of ["encodings", "decodings", "reconstructions"]) {
    const base = `/v1/${resource}`;
    await call("GET", base, { schema: JobListSchema });
    await call("GET", `${base}?limit=0`);
    await call("GET", `${base}?before=nope`);
    await call("POST", base, { body: form({ model: MODEL, colour: "red" }) });
    await call("POST", base, { body: form({ model: "nope" }) });
    await call("POST", base, { body: form({ model: MODEL }, null) });
    await call("POST", base, { headers: { "content-type": "text/plain" }, body: "x" });
    await call("POST", base, { body: form({ model: MODEL }, new Uint8Array(100).fill(7)) });
    for (const suffix of ["", "/cancel", "/events"]) {
      await call(suffix === "/cancel" ? "POST" : "GET", `${base}/nope${suffix}`);
    }
    await call("DELETE", `${base}/nope`);
    const item = resource === "encodings" ? "latents" : "video";
    await call("GET", `${base}/nope/items/0/${item}`);
    await call("GET", `${base}/nope/content`);
  }
  // A real encoding, its outputs and what can be done with it.
  const enc = await call("POST", "/v1/encodings", {
    headers: { prefer: "wait=60" },
    body: form({ model: MODEL }),
    schema: JobSchema,
  });
  const { id } = (await enc.json()) as { id: string };
  await call("GET", `/v1/encodings/${id}`, { schema: JobSchema });
  await call("GET", `/v1/encodings/${id}/events`);
  const latents = `/v1/encodings/${id}/items/0/latents`;
  const full = await call("GET", latents);
  const npy = new Uint8Array(await full.arrayBuffer());
  await call("GET", latents, { headers: { "if-none-match": full.headers.get("etag") as string } });
  await call("GET", latents, { headers: { range: "bytes=0-3" } });
  await call("GET", latents, { headers: { range: "bytes=999999999-" } });
  await call("GET", `${latents}?format=json`);
  await call("GET", `${latents}?format=xml`);
  await call("GET", `/v1/encodings/${id}/items/7/latents`);
  await call("GET", `/v1/encodings/${id}/items/0/metadata`);
  await call("POST", `/v1/encodings/${id}/cancel`);
  const dec = await call("POST", "/v1/decodings", {
    headers: { prefer: "wait=60" },
    body: form({ model: MODEL }, npy, "z.npy"),
  });
  const decId = ((await dec.json()) as { id: string }).id;
  await call("GET", `/v1/decodings/${decId}/items/0/video`);
  await call("DELETE", `/v1/decodings/${decId}`);
  await call("DELETE", `/v1/encodings/${id}`);
  // Generations.
  await call("GET", "/v1/generations", { schema: JobListSchema });
  await call("POST", "/v1/generations", jsonBody({ model: MODEL, label: "a", seed: 1.5 }));
  await call("POST", "/v1/generations", jsonBody({ model: "nope", label: "a" }));
  await call("POST", "/v1/generations", {
    headers: { "content-type": "application/json" },
    body: "{",
  });
  const gen = await call("POST", "/v1/generations", {
    ...jsonBody({ model: MODEL, label: "a", steps: 1, format: "npy" }),
    headers: { "content-type": "application/json", prefer: "wait=60" },
    schema: JobSchema,
  });
  const genId = ((await gen.json()) as { id: string }).id;
  // Image-to-video and extension: multipart with an image or a video, or an encoding's latents.
  const picture = new FormData();
  for (const [k, v] of Object.entries({ model: MODEL, label: "a", steps: "1", format: "npy" })) {
    picture.append(k, v);
  }
  picture.append("image", new Blob([clip]), "v.mp4"); // a clip: not an image (422)
  await call("POST", "/v1/generations", { body: picture });
  const noEncoding = { model: MODEL, label: "a", encoding: "enc_nope" };
  await call("POST", "/v1/generations", jsonBody(noEncoding));
  await call("GET", `/v1/generations/${genId}`, { schema: JobSchema });
  await call("GET", `/v1/generations/${genId}/content?index=0`);
  const nine = await call("GET", `/v1/generations/${genId}/content?index=9`);
  assert.match(((await nine.json()) as { error: { message: string } }).error.message, /^index: 9 /);
  const word = await call("GET", `/v1/generations/${genId}/content?index=x`);
  assert.equal(word.status, 400);
  assert.match(((await word.json()) as { error: { message: string } }).error.message, /^index: x /);
  await call("GET", `/v1/generations/${genId}/items/0/latents`);
  await call("GET", `/v1/generations/${genId}/items/0/video`); // an npy generation: 404
  await call("GET", `/v1/generations/${genId}/events`);
  await call("POST", `/v1/generations/${genId}/cancel`);
  await call("DELETE", `/v1/generations/${genId}`);
  await call("GET", `/v1/generations/${genId}`);
  // Keys and runs.
  await call("GET", "/v1/admin/keys");
  await call("GET", "/v1/admin/keys", { key: t.user });
  await call("POST", "/v1/admin/keys", jsonBody({ name: "" }));
  await call("POST", "/v1/admin/keys", jsonBody({ name: "x" }));
  await call("DELETE", "/v1/admin/keys/nope");
  await call("GET", "/v1/runs", { schema: RunListSchema });
  await call("GET", "/v1/runs?limit=0");
  // A repeated query parameter: its first value, as c.req.query() reads it.
  assert.equal((await call("GET", "/v1/runs?limit=1&limit=x")).status, 200);
  await call("GET", "/v1/runs/nope");
  await call("GET", "/v1/runs/nope/metrics?name=x");
  await call("POST", "/v1/runs", jsonBody({ kind: "gan" }));
  await call("POST", "/v1/runs", { ...jsonBody({ kind: "autoencoder" }), key: t.user });
  await call("POST", "/v1/runs/nope/stop");
  const recorded = join(REPO_ROOT, "tests/node/fixtures/recorded-runs/ae-small-se");
  await call("POST", "/v1/runs/import", jsonBody({ path: recorded }));
  await call("POST", "/v1/runs/import", jsonBody({ path: join(work, "none") }));
  await call("GET", "/v1/runs/ae-small-se", { schema: RunDetailSchema });
  await call("GET", "/v1/runs/ae-small-se/metrics");
  // Every documented operation was walked at least once.
  assert.deepEqual(
    [...docOperations()].filter((k) => !seen.has(k)),
    [],
    "operations never called",
  );
});
