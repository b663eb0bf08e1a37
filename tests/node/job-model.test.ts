// One job model (issue 22): the four resources are one route factory over one table, so each
// answers alike. Table-driven over encodings, decodings, reconstructions and generations:
// GET with Prefer: wait on a job seen *running* waits for its end; Idempotency-Key replays the
// same job (and refuses another request under the same key); the list envelope is {jobs, next};
// a download before the item succeeded is 409 item_not_ready; the quota is 429 too_many_jobs.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { uploadsDir } from "../../src/pipeline/work/datadir.ts";
import { JOB_KINDS } from "../../src/pipeline/work/job-kinds.ts";
import { auth, MODEL, makeVideo, openTestApp, type TestApp, tempDir } from "./server-helpers.ts";

let t: TestApp;
const work = tempDir("job-model");
const clip = new Uint8Array(readFileSync(makeVideo(join(work, "clip.mp4"), { seconds: 2 })));
const long = new Uint8Array(readFileSync(makeVideo(join(work, "long.mp4"), { seconds: 30 })));
let clipLatents: Uint8Array;
let longLatents: Uint8Array;

type Job = {
  id: string;
  status: string;
  finishedAt: string | null;
  items: { urls: Record<string, string> }[];
};

const RESOURCES = ["encodings", "decodings", "reconstructions", "generations"] as const;
type Resource = (typeof RESOURCES)[number];

/** A POST to a resource: multipart with one file, or (generations) JSON. */
function post(
  resource: Resource,
  size: "short" | "long",
  headers: Record<string, string> = {},
  extra: Record<string, string | number> = {},
) {
  if (resource === "generations") {
    const body =
      size === "short"
        ? { model: MODEL, label: "a", steps: 1, format: "npy", ...extra }
        : { model: MODEL, label: "a", steps: 200, n: 8, frames: 65, format: "npy", ...extra };
    return t.app.request("/v1/generations", {
      method: "POST",
      headers: { ...auth(t.user), "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  }
  const form = new FormData();
  form.append("model", MODEL);
  if (resource === "encodings" && size === "long") form.append("mode", "whole");
  for (const [k, v] of Object.entries(extra)) form.append(k, String(v));
  const file =
    resource === "decodings"
      ? size === "short"
        ? clipLatents
        : longLatents
      : size === "short"
        ? clip
        : long;
  form.append("files", new Blob([file]), resource === "decodings" ? "z.npy" : "v.mp4");
  return t.app.request(`/v1/${resource}`, {
    method: "POST",
    headers: { ...auth(t.user), ...headers },
    body: form,
  });
}

const get = (path: string, headers: Record<string, string> = {}) =>
  t.app.request(path, { headers: { ...auth(t.user), ...headers } });

async function latentsOf(video: Uint8Array, mode: string): Promise<Uint8Array> {
  const form = new FormData();
  form.append("model", MODEL);
  form.append("mode", mode);
  form.append("files", new Blob([video]), "v.mp4");
  const res = await t.app.request("/v1/encodings", {
    method: "POST",
    headers: { ...auth(t.user), prefer: "wait=60" },
    body: form,
  });
  const job = (await res.json()) as Job;
  assert.equal(job.status, "succeeded", JSON.stringify(job));
  const npy = await get(`/v1/encodings/${job.id}/items/0/latents`);
  return new Uint8Array(await npy.arrayBuffer());
}

before(async () => {
  t = await openTestApp();
  clipLatents = await latentsOf(clip, "clip");
  longLatents = await latentsOf(long, "whole");
});
after(() => t.close());

/** Polls (without waiting) until the job is running. */
async function untilRunning(path: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = (await (await get(path)).json()) as Job;
    if (job.status === "running") return;
    assert.equal(job.status, "queued", `${path} ended before it was seen running`);
    assert.ok(Date.now() < deadline, `${path} still queued`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const errorCode = async (res: Response) =>
  ((await res.json()) as { error: { code: string } }).error.code;

test("the registry has one kind per resource, and the app serves each", () => {
  assert.deepEqual(
    JOB_KINDS.map((k) => k.resource),
    [...RESOURCES],
  );
});

for (const resource of RESOURCES) {
  test(`${resource}: GET with Prefer: wait on a running job waits for its end; downloads before it are 409 item_not_ready`, async () => {
    const created = await post(resource, "long");
    assert.equal(created.status, 202);
    const job = (await created.json()) as Job;
    const path = `/v1/${resource}/${job.id}`;
    await untilRunning(path);
    // Before the item succeeded: the same 409 on every download route of every resource.
    const role = JOB_KINDS.find((k) => k.resource === resource)?.outputRoles[0] as string;
    for (const url of [`${path}/items/0/${role}`, `${path}/content?index=0`]) {
      const early = await get(url);
      assert.equal(early.status, 409, url);
      assert.equal(await errorCode(early), "item_not_ready", url);
    }
    const asked = Date.now();
    const waited = await get(path, { prefer: "wait=60" });
    assert.equal(waited.status, 200);
    assert.equal(waited.headers.get("preference-applied"), "wait=60");
    const final = (await waited.json()) as Job;
    assert.equal(final.status, "succeeded", JSON.stringify(final));
    // It ended after the GET was sent: the answer waited for it.
    assert.ok(Date.parse(final.finishedAt as string) > asked, `${final.finishedAt} vs ${asked}`);
  });

  test(`${resource}: Idempotency-Key replays the same job; another request under it is 422; the list envelope is {jobs, next}`, async () => {
    const key = { "idempotency-key": `same-${resource}` };
    const first = await post(resource, "short", { ...key, prefer: "wait=60" });
    assert.equal(first.status, 200);
    const job = (await first.json()) as Job;
    const retry = await post(resource, "short", key);
    assert.equal(retry.status, 200, "a replay of a finished job");
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(((await retry.json()) as Job).id, job.id);
    // The replay's own upload is not kept.
    const listed = (await (await get(`/v1/${resource}`)).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(listed).sort(), ["jobs", "next"]);
    const ids = (listed.jobs as Job[]).map((j) => j.id);
    assert.equal(ids.filter((id) => id === job.id).length, 1);
    assert.equal(ids.length, new Set(ids).size);
    // Another request under the same key: refused, nothing queued.
    const other = await post(resource, "short", key, {
      ...(resource === "generations" ? { seed: 5 } : {}),
      ...(resource === "encodings" ? { dtype: "float16" } : {}),
      ...(resource === "decodings" || resource === "reconstructions" ? { format: "webm" } : {}),
    });
    assert.equal(other.status, 422);
    assert.equal(await errorCode(other), "idempotency_key_reused");
    const after = (await (await get(`/v1/${resource}`)).json()) as { jobs: Job[] };
    assert.equal(after.jobs.length, ids.length);
    // A key is per resource: the same key on another resource is another request.
    const elsewhere = resource === "generations" ? "encodings" : "generations";
    const fresh = await post(elsewhere, "short", { ...key, prefer: "wait=60" });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.headers.get("idempotent-replayed"), null);
    assert.equal(existsSync(uploadsDir(t.config.dataDir, job.id)), false);
  });
}

test("every resource: the same 429 too_many_jobs beyond the per-key bound", async () => {
  const saved = t;
  t = await openTestApp({ DIFFUSABLE_MAX_ACTIVE_JOBS: "1" });
  try {
    for (const resource of RESOURCES) {
      const first = await post(resource, "long");
      assert.equal(first.status, 202, resource);
      const res = await post(resource, "short");
      assert.equal(res.status, 429, resource);
      assert.equal(res.headers.get("retry-after"), "10");
      assert.equal(await errorCode(res), "too_many_jobs", resource);
      await t.runner.cancel(((await first.json()) as Job).id);
      await t.runner.idle();
    }
  } finally {
    await t.close();
    t = saved;
  }
});
