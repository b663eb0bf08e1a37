// SIGKILL the server in the middle of encoding jobs and start it again: the database is sound,
// the interrupted job resumes (items already done are kept), a job whose inputs vanished fails with
// that reason, and no half-written output is ever served.

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { type ServeProcess, spawnServe } from "../../src/server/serve-process.ts";
import { createKey } from "../../src/store/api-keys.ts";
import { closeDb, integrityCheck, openDb } from "../../src/store/db.ts";
import { getJob } from "../../src/store/job-rows.ts";
import {
  auth,
  fixtureModelsDir,
  MODEL,
  makeVideo,
  tempDir,
  tempFilesUnder,
  waitForJob,
} from "./server-helpers.ts";

const dataDir = tempDir("crash");
const work = tempDir("crash-inputs");
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

async function startChild(): Promise<ServeProcess> {
  const server = await spawnServe({
    dataDir,
    modelsDir: fixtureModelsDir(),
    env: { DIFFUSABLE_THREADS: "1", DIFFUSABLE_JOB_CONCURRENCY: "2" },
    captureStderr: true,
    timeoutMs: 60_000,
  });
  children.push(server.child);
  return server;
}

async function post(url: string, secret: string, paths: string[]): Promise<string> {
  const form = new FormData();
  form.append("model", MODEL);
  form.append("mode", "whole");
  for (const p of paths) form.append("files", new Blob([readFileSync(p)]), p.split("/").pop());
  const res = await fetch(`${url}/v1/encodings`, {
    method: "POST",
    headers: auth(secret),
    body: form,
  });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

test("SIGKILL during encoding jobs: integrity ok, resumed or failed with a reason, no half output", async () => {
  const db0 = openDb(join(dataDir, "diffusable.sqlite"));
  const secret = createKey(db0, "crash", "user").secret;
  closeDb(db0);

  const many = Array.from({ length: 8 }, (_, i) =>
    makeVideo(join(work, `m${i}.mp4`), { seconds: 12, size: "96x64" }),
  );
  // Ten minutes (4,800 frames, 50 times one item of the first job): it must still be encoding
  // when the first job has finished an item. At 90 s a CI run saw it finish first.
  const long = makeVideo(join(work, "long.mp4"), { seconds: 600, size: "96x64" });

  const first = await startChild();
  const resumeId = await post(first.url, secret, many);
  const loseId = await post(first.url, secret, [long]);

  // Wait until the first job has finished some items but not all, then kill -9.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await fetch(`${first.url}/v1/encodings/${resumeId}`, { headers: auth(secret) });
    const job = (await res.json()) as { status: string; items: { status: string }[] };
    const done = job.items.filter((i) => i.status === "succeeded").length;
    assert.notEqual(job.status, "succeeded", "the job finished before it could be interrupted");
    const lose = await fetch(`${first.url}/v1/encodings/${loseId}`, { headers: auth(secret) });
    const loseStatus = ((await lose.json()) as { status: string }).status;
    assert.ok(
      loseStatus === "queued" || loseStatus === "running",
      `the long job must not end before the first is cut (it is ${loseStatus})`,
    );
    if (done >= 1 && done < job.items.length) break;
    assert.ok(Date.now() < deadline, "no progress");
    await new Promise((r) => setTimeout(r, 20));
  }
  first.child.kill("SIGKILL");
  await new Promise((r) => first.child.once("exit", r));

  // After the crash: the database is sound; every output on disk under its final name is whole.
  const db = openDb(join(dataDir, "diffusable.sqlite"));
  assert.equal(integrityCheck(db), "ok");
  const before = getJob(db, resumeId);
  assert.equal(before?.job.status, "running");
  for (const item of before?.items ?? []) {
    if (item.status !== "succeeded") continue;
    const latents = item.outputs?.latents as string;
    assert.equal(sha(readFileSync(latents)), item.outputSha256, "a succeeded item's file is whole");
  }
  const keptSucceeded = (before?.items ?? []).filter((i) => i.status === "succeeded").length;
  assert.ok(keptSucceeded >= 1);
  assert.equal(getJob(db, loseId)?.job.status, "running");
  closeDb(db);
  // The second job's uploaded inputs vanish while the server is down.
  rmSync(join(dataDir, "uploads", loseId), { recursive: true, force: true });

  const second = await startChild();
  try {
    assert.match(second.log(), new RegExp(`resuming ${resumeId}`));
    assert.deepEqual(tempFilesUnder(dataDir), [], "temporary files are swept at start-up");

    const lost = (await (
      await fetch(`${second.url}/v1/encodings/${loseId}`, { headers: auth(secret) })
    ).json()) as { status: string; error: { code: string; message: string }; items: unknown[] };
    assert.equal(lost.status, "failed");
    assert.equal(lost.error.code, "input_missing");
    assert.match(lost.error.message, /gone/);

    const resumed = (await waitForJob(second.url, `/v1/encodings/${resumeId}`, secret)) as {
      status: string;
      attempts: number;
      items: { status: string; sha256: string }[];
    };
    assert.equal(resumed.status, "succeeded", JSON.stringify(resumed));
    assert.equal(resumed.attempts, 2);
    for (const [n, item] of resumed.items.entries()) {
      assert.equal(item.status, "succeeded");
      const res = await fetch(`${second.url}/v1/encodings/${resumeId}/items/${n}/latents`, {
        headers: auth(secret),
      });
      assert.equal(res.status, 200);
      assert.equal(sha(new Uint8Array(await res.arrayBuffer())), item.sha256);
    }
    const outDir = join(dataDir, "outputs", resumeId);
    assert.ok(existsSync(outDir));
    assert.ok(readdirSync(outDir).every((f) => !f.startsWith(".tmp-")));
    const check = openDb(join(dataDir, "diffusable.sqlite"));
    assert.equal(integrityCheck(check), "ok");
    closeDb(check);
  } finally {
    second.child.kill("SIGTERM");
    await new Promise((r) => second.child.once("exit", r));
  }
});
