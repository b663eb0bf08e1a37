// The API through app.request(): auth, roles, JSON errors for unknown routes and malformed bodies,
// validation naming the field, unknown models, per-key job limits, /v1/models and /openapi.json.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { findKeyBySecret } from "../../src/store/api-keys.ts";
import { insertJob, newJobId } from "../../src/store/job-rows.ts";
import { auth, MODEL, openTestApp, type TestApp } from "./server-helpers.ts";

let t: TestApp;
before(async () => {
  t = await openTestApp({ DIFFUSABLE_MAX_ACTIVE_JOBS: "2" });
});
after(() => t.close());

async function errorOf(res: Response, status: number, code: string): Promise<string> {
  assert.equal(res.status, status, `status of ${res.url}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, code, body.error.message);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
  return body.error.message;
}

function form(fields: Record<string, string>, files = 1): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (let i = 0; i < files; i++) f.append("files", new Blob([new Uint8Array([1, 2, 3])]), "a.mp4");
  return f;
}

test("GET /healthz needs no key", async () => {
  const res = await t.app.request("/healthz");
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { status: string }).status, "ok");
});

test("unknown routes answer a JSON 404", async () => {
  await errorOf(await t.app.request("/nope"), 404, "not_found");
  await errorOf(
    await t.app.request("/v1/encodings/x/y/z", { headers: auth(t.user) }),
    404,
    "not_found",
  );
});

test("a missing or wrong API key is a 401 naming the problem", async () => {
  const missing = await t.app.request("/v1/models");
  assert.match(missing.headers.get("www-authenticate") ?? "", /Bearer/);
  assert.match(await errorOf(missing, 401, "missing_api_key"), /Authorization: Bearer/);
  await errorOf(
    await t.app.request("/v1/models", { headers: auth("dfs_wrong") }),
    401,
    "invalid_api_key",
  );
  await errorOf(
    await t.app.request("/v1/models", { headers: { authorization: "Basic abc" } }),
    401,
    "invalid_api_key",
  );
});

test("a user key on an admin route is a 403; an admin key works", async () => {
  await errorOf(await t.app.request("/v1/admin/keys", { headers: auth(t.user) }), 403, "forbidden");
  const res = await t.app.request("/v1/admin/keys", { headers: auth(t.admin) });
  assert.equal(res.status, 200);
  const { keys } = (await res.json()) as { keys: { name: string; role: string }[] };
  assert.deepEqual(keys.map((k) => k.role).sort(), ["admin", "user"]);
  assert.ok(!JSON.stringify(keys).includes(t.user));
});

test("admins create and revoke keys over HTTP; malformed JSON is a JSON 400", async () => {
  const post = (body: string) =>
    t.app.request("/v1/admin/keys", {
      method: "POST",
      headers: { ...auth(t.admin), "content-type": "application/json" },
      body,
    });
  await errorOf(await post("{not json"), 400, "malformed_json");
  assert.match(await errorOf(await post('{"role":"root"}'), 400, "invalid_field"), /name/);
  const created = await post('{"name":"bob"}');
  assert.equal(created.status, 201);
  const { key, secret } = (await created.json()) as { key: { id: string }; secret: string };
  assert.equal((await t.app.request("/v1/models", { headers: auth(secret) })).status, 200);
  const revoked = await t.app.request(`/v1/admin/keys/${key.id}`, {
    method: "DELETE",
    headers: auth(t.admin),
  });
  assert.equal(revoked.status, 200);
  await errorOf(
    await t.app.request("/v1/models", { headers: auth(secret) }),
    401,
    "invalid_api_key",
  );
});

test("GET /v1/models lists the fixture bundle", async () => {
  const res = await t.app.request("/v1/models", { headers: auth(t.user) });
  assert.equal(res.status, 200);
  const { models } = (await res.json()) as { models: { name: string }[] };
  assert.ok(
    models.some((m) => m.name === MODEL),
    JSON.stringify(models),
  );
});

test("POST /v1/encodings: bad options are 400s naming the field; unknown model is 404", async () => {
  const post = (body: FormData) =>
    t.app.request("/v1/encodings", { method: "POST", headers: auth(t.user), body });
  assert.match(
    await errorOf(await post(form({ model: MODEL, mode: "sideways" })), 400, "invalid_field"),
    /^mode must be one of/,
  );
  assert.match(
    await errorOf(await post(form({ model: MODEL, fps: "-3" })), 400, "invalid_field"),
    /^fps must be/,
  );
  assert.match(
    await errorOf(await post(form({ model: MODEL, dtype: "int8" })), 400, "invalid_field"),
    /^dtype must be one of/,
  );
  assert.match(await errorOf(await post(form({})), 400, "invalid_field"), /^model: /);
  assert.match(
    await errorOf(await post(form({ model: "no-such-model" })), 404, "unknown_model"),
    /no-such-model/,
  );
  assert.match(
    await errorOf(await post(form({ model: MODEL }, 0)), 400, "missing_file"),
    /^files: /,
  );
});

test("a non-multipart or malformed multipart body is a JSON error", async () => {
  const res = await t.app.request("/v1/encodings", {
    method: "POST",
    headers: { ...auth(t.user), "content-type": "application/json" },
    body: "{}",
  });
  await errorOf(res, 415, "unsupported_media_type");
  const bad = await t.app.request("/v1/encodings", {
    method: "POST",
    headers: { ...auth(t.user), "content-type": "multipart/form-data; boundary=XYZ" },
    body: '--XYZ\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny\r\n--XY',
  });
  await errorOf(bad, 400, "malformed_multipart");
});

test("a key over its queued+running job limit gets a 429 with Retry-After", async () => {
  const key = findKeyBySecret(t.db, t.user);
  assert.ok(key);
  // Fill the key's quota with jobs the runner will not get to (it is stopped for this).
  await t.runner.stop();
  for (let i = 0; i < 2; i++) {
    insertJob(t.db, {
      id: newJobId("enc"),
      kind: "encode",
      keyId: key.id,
      model: MODEL,
      options: {},
      items: [{ sourceName: "x.mp4", inputPath: "/nowhere/x.mp4", inputBytes: 1 }],
    });
  }
  const res = await t.app.request("/v1/encodings", {
    method: "POST",
    headers: auth(t.user),
    body: form({ model: MODEL }),
  });
  assert.ok(Number(res.headers.get("retry-after")) > 0);
  assert.match(await errorOf(res, 429, "too_many_jobs"), /limit is 2/);
});

test("jobs of other keys are not visible", async () => {
  await errorOf(
    await t.app.request("/v1/encodings/enc_nope", { headers: auth(t.user) }),
    404,
    "not_found",
  );
});

test("/openapi.json is built from the request schemas", async () => {
  const res = await t.app.request("/openapi.json");
  assert.equal(res.status, 200);
  const doc = (await res.json()) as {
    openapi: string;
    paths: Record<string, Record<string, { requestBody?: unknown }>>;
  };
  assert.equal(doc.openapi, "3.1.0");
  for (const p of [
    "/healthz",
    "/v1/models",
    "/v1/encodings",
    "/v1/encodings/{id}",
    "/v1/encodings/{id}/items/{n}/latents",
    "/v1/decodings",
    "/v1/reconstructions",
    "/v1/admin/keys",
  ]) {
    assert.ok(doc.paths[p], p);
  }
  const body = JSON.stringify(doc.paths["/v1/encodings"]?.post?.requestBody);
  assert.match(body, /"clip","whole"/);
  assert.match(body, /"float32","float16"/);
});

test("GET /v1/encodings lists the key's jobs newest first, with paging; bad queries are 400s", async () => {
  const list = async (query: string, secret = t.user) => {
    const res = await t.app.request(`/v1/encodings${query}`, { headers: auth(secret) });
    assert.equal(res.status, 200);
    return ((await res.json()) as { jobs: { id: string; status: string }[] }).jobs;
  };
  const mine = await list("");
  assert.equal(mine.length, 2, "the two jobs queued by the 429 test");
  assert.ok(mine.every((j) => j.status === "queued"));
  const [newest, older] = mine;
  assert.deepEqual(
    (await list("?limit=1")).map((j) => j.id),
    [newest?.id],
  );
  assert.deepEqual(
    (await list(`?before=${newest?.id}`)).map((j) => j.id),
    [older?.id],
  );
  assert.equal((await list("?status=succeeded")).length, 0);
  assert.equal((await list("", t.admin)).length, 2, "admins see every key's jobs");
  const bad = await t.app.request("/v1/encodings?limit=0", { headers: auth(t.user) });
  assert.match(await errorOf(bad, 400, "invalid_field"), /^limit must be/);
  assert.equal((await list("", t.admin)).length, 2);
  const decodings = await t.app.request("/v1/decodings", { headers: auth(t.user) });
  assert.deepEqual(await decodings.json(), { jobs: [], next: null });
});
