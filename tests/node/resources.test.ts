// One resource model for encodings, decodings, reconstructions and generations, through a real
// server: Prefer: wait=N, SSE /events, one pagination (?limit, ?before, next), POST .../cancel
// (409 already_finished once over), DELETE of a finished job and its files, 404 not_found after;
// downloads named <job>-<n>.<ext> with Range and If-None-Match; and the retention setting.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  auth,
  MODEL,
  makeVideo,
  startTestServer,
  type TestServer,
  tempDir,
} from "./server-helpers.ts";

// Every process warning of this file's jobs (a whole-mode encode of 60 s, 8 videos of 200 steps,
// long decodes): the last test asserts there was no MaxListenersExceededWarning among them.
const warnings: string[] = [];
process.on("warning", (w) => warnings.push(`${w.name}: ${w.message}`));

const work = tempDir("resources");
let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(() => s.close());

const clip = new Uint8Array(readFileSync(makeVideo(join(work, "clip.mp4"), { seconds: 2 })));

function upload(
  path: string,
  name: string,
  bytes: Uint8Array,
  headers: Record<string, string> = {},
) {
  const form = new FormData();
  form.append("model", MODEL);
  form.append("files", new Blob([bytes]), name);
  return fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { ...auth(s.user), ...headers },
    body: form,
  });
}

type Job = { id: string; status: string; items?: { urls: Record<string, string> }[] };

async function create(resource: string, wait = true): Promise<{ res: Response; job: Job }> {
  const prefer: Record<string, string> = wait ? { prefer: "wait=60" } : {};
  let res: Response;
  if (resource === "generations") {
    res = await fetch(`${s.url}/v1/generations`, {
      method: "POST",
      headers: { ...auth(s.user), "content-type": "application/json", ...prefer },
      body: JSON.stringify({ model: MODEL, label: "a", steps: 1, format: "npy" }),
    });
  } else if (resource === "decodings") {
    const enc = (await (
      await upload("/v1/encodings", "clip.mp4", clip, { prefer: "wait=60" })
    ).json()) as Job;
    const latents = await fetch(`${s.url}/v1/encodings/${enc.id}/items/0/latents`, {
      headers: auth(s.user),
    });
    res = await upload(
      "/v1/decodings",
      "clip.npy",
      new Uint8Array(await latents.arrayBuffer()),
      prefer,
    );
  } else {
    res = await upload(`/v1/${resource}`, "clip.mp4", clip, prefer);
  }
  return { res, job: (await res.clone().json()) as Job };
}

// Jobs long enough (seconds, here) to still be active right after their 202.
const long = new Uint8Array(readFileSync(makeVideo(join(work, "long.mp4"), { seconds: 60 })));
let longLatents: Uint8Array | undefined;

async function createLong(resource: string): Promise<{ res: Response; job: Job }> {
  let res: Response;
  if (resource === "generations") {
    res = await fetch(`${s.url}/v1/generations`, {
      method: "POST",
      headers: { ...auth(s.user), "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        label: "a",
        steps: 200,
        n: 8,
        frames: 65,
        format: "npy",
      }),
    });
  } else if (resource === "decodings") {
    if (!longLatents) {
      const form = new FormData();
      form.append("model", MODEL);
      form.append("mode", "whole");
      form.append("files", new Blob([long]), "long.mp4");
      const enc = (await (
        await fetch(`${s.url}/v1/encodings`, {
          method: "POST",
          headers: { ...auth(s.user), prefer: "wait=60" },
          body: form,
        })
      ).json()) as Job;
      const latents = await fetch(`${s.url}/v1/encodings/${enc.id}/items/0/latents`, {
        headers: auth(s.user),
      });
      assert.equal(latents.status, 200);
      longLatents = new Uint8Array(await latents.arrayBuffer());
    }
    res = await upload("/v1/decodings", "long.npy", longLatents);
  } else {
    res = await upload(`/v1/${resource}`, "long.mp4", long);
  }
  return { res, job: (await res.clone().json()) as Job };
}

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${s.url}${path}`, { headers: { ...auth(s.user), ...headers } });

async function codeOf(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

for (const resource of ["encodings", "decodings", "reconstructions", "generations"]) {
  test(`${resource}: Prefer wait, /events, pagination, cancel, DELETE, not_found`, async () => {
    const { res, job } = await create(resource);
    assert.equal(res.status, 200, JSON.stringify(job));
    assert.equal(res.headers.get("preference-applied"), "wait=60");
    assert.equal(job.status, "succeeded");
    const base = `/v1/${resource}/${job.id}`;
    assert.equal((await get(base, { prefer: "wait=1" })).status, 200);
    // SSE: the finished job arrives as one "done" event.
    const events = await (await get(`${base}/events`)).text();
    assert.match(events, /event: done\ndata: \{.*"status":"succeeded"/);
    // One pagination: ?limit and ?before, with a next URL.
    const second = await create(resource, false);
    const page = (await (await get(`/v1/${resource}?limit=1`)).json()) as {
      jobs: { id: string }[];
      next: string | null;
    };
    const list = page.jobs.map((j) => j.id);
    assert.deepEqual(list, [second.job.id]);
    assert.ok(page.next?.includes(`before=${second.job.id}`), String(page.next));
    const next = (await (await get(page.next as string)).json()) as { jobs: { id: string }[] };
    assert.ok(next.jobs.some((j) => j.id === job.id));
    // Cancel is POST .../cancel on every resource; once over it is 409 already_finished.
    const cancel = await fetch(`${s.url}${base}/cancel`, { method: "POST", headers: auth(s.user) });
    assert.equal(cancel.status, 409);
    assert.equal(await codeOf(cancel), "already_finished");
    // DELETE deletes the finished job and its outputs.
    const del = await fetch(`${s.url}${base}`, { method: "DELETE", headers: auth(s.user) });
    assert.equal(del.status, 200);
    assert.deepEqual(await del.json(), { id: job.id, deleted: true });
    const gone = await get(base);
    assert.equal(gone.status, 404);
    assert.equal(await codeOf(gone), "not_found");
    assert.ok(!existsSync(join(s.config.dataDir, "outputs", job.id)));
    await get(`/v1/${resource}/${second.job.id}`, { prefer: "wait=60" });
  });

  test(`${resource}: GET with Prefer: wait waits for a running job; DELETE of an active one is 409`, async () => {
    const { res, job } = await createLong(resource);
    assert.equal(res.status, 202, JSON.stringify(job));
    const path = `/v1/${resource}/${job.id}`;
    // DELETE while it is queued or running: refused, cancel first.
    const refused = await fetch(`${s.url}${path}`, { method: "DELETE", headers: auth(s.user) });
    assert.equal(refused.status, 409, "the job was still active");
    assert.equal(await codeOf(refused), "not_finished");
    const asked = Date.now();
    const waited = await get(path, { prefer: "wait=60" });
    assert.equal(waited.status, 200);
    assert.equal(waited.headers.get("preference-applied"), "wait=60");
    const final = (await waited.json()) as Job & { finishedAt: string };
    assert.equal(final.status, "succeeded", JSON.stringify(final));
    // It ended after the GET was sent: the answer waited for it (the job is long enough).
    assert.ok(Date.parse(final.finishedAt) > asked, `${final.finishedAt} vs ${new Date(asked)}`);
    // Without Prefer, no Preference-Applied.
    const plain = await get(path);
    assert.equal(plain.headers.get("preference-applied"), null);
  });
}

test("downloads: <job>-<n>.<ext>, Range 206, If-None-Match 304", async () => {
  const { job } = await create("reconstructions");
  const url = `/v1/reconstructions/${job.id}/items/0/video`;
  const full = await get(url);
  assert.equal(full.status, 200);
  assert.match(full.headers.get("content-disposition") ?? "", new RegExp(`${job.id}-0\\.mp4`));
  const etag = full.headers.get("etag") as string;
  assert.equal((await get(url, { "if-none-match": etag })).status, 304);
  const part = await get(url, { range: "bytes=0-9" });
  assert.equal(part.status, 206);
  assert.equal((await part.arrayBuffer()).byteLength, 10);
});

test("DIFFUSABLE_RETENTION_DAYS deletes finished jobs and their outputs", async () => {
  const r = await startTestServer({ DIFFUSABLE_RETENTION_DAYS: String(2 / 86_400) }); // 2 s
  try {
    const form = new FormData();
    form.append("model", MODEL);
    form.append("files", new Blob([clip]), "clip.mp4");
    const res = await fetch(`${r.url}/v1/encodings`, {
      method: "POST",
      headers: { ...auth(r.user), prefer: "wait=60" },
      body: form,
    });
    const job = (await res.json()) as Job;
    assert.equal(job.status, "succeeded");
    assert.ok(existsSync(join(r.config.dataDir, "outputs", job.id)));
    const deadline = Date.now() + 15_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      status = (await fetch(`${r.url}/v1/encodings/${job.id}`, { headers: auth(r.user) })).status;
    }
    assert.equal(status, 404);
    assert.ok(!existsSync(join(r.config.dataDir, "outputs", job.id)));
  } finally {
    await r.close();
  }
});

test("no listener warning from any job above", () => {
  assert.deepEqual(
    warnings.filter((w) => w.startsWith("MaxListenersExceededWarning")),
    [],
  );
});
