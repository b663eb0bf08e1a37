// The store's queries on the request path (src/store/job-rows.ts, api-keys.ts): prepared once per
// connection, they bind each call's values (a null after a value, dates, JSON) and see every
// write; and the quota counts, the claim of the next job and a key's list read through indexes
// that lead with the job's status or key, so that their cost does not grow with the jobs a key or
// kind has finished (SQLite's own query plan, on a file with 600 finished jobs).

import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { createKey, findKeyBySecret, keyById, revokeKey } from "../../src/store/api-keys.ts";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import {
  claimNextJob,
  countJobs,
  getItem,
  getJob,
  insertJob,
  listJobs,
  setItem,
  setJob,
} from "../../src/store/job-rows.ts";
import { tempDir } from "./server-helpers.ts";

const dir = tempDir("store-queries");
after(() => rmSync(dir, { recursive: true, force: true }));

test("prepared job and key queries bind each call's values and see every write", () => {
  const db = openDb(join(dir, "values.sqlite"));
  try {
    const { key, secret } = createKey(db, "k", "user");
    const a = insertJob(db, {
      id: "enc_a",
      kind: "encode",
      keyId: key.id,
      model: "m",
      options: { mode: "clip", nested: [1, 2] },
      items: [{ sourceName: "a.mp4", inputPath: "in/a.mp4", inputBytes: 7 }, {}],
    });
    const b = insertJob(db, {
      id: "enc_b",
      kind: "encode",
      keyId: null,
      model: "m",
      options: {},
      items: [],
    });
    assert.equal(b.job.seq, a.job.seq + 1);
    assert.deepEqual(a.job.options, { mode: "clip", nested: [1, 2] });
    assert.deepEqual(
      a.items.map((i) => [i.index, i.sourceName, i.inputBytes]),
      [
        [0, "a.mp4", 7],
        [1, null, 0],
      ],
    );

    const finished = new Date("2026-12-04T10:00:00.123Z");
    setJob(db, "enc_a", { status: "failed", errorMessage: "first", finishedAt: finished });
    setJob(db, "enc_b", { errorMessage: "other" }); // the same statement, another row
    let job = getJob(db, "enc_a")?.job;
    assert.equal(job?.errorMessage, "first");
    assert.equal(job?.finishedAt?.getTime(), finished.getTime());
    setJob(db, "enc_a", { errorMessage: null, finishedAt: null, progress: 0.5 });
    job = getJob(db, "enc_a")?.job;
    assert.equal(job?.errorMessage, null);
    assert.equal(job?.finishedAt, null);
    assert.equal(job?.progress, 0.5);
    assert.equal(job?.status, "failed"); // columns not given are left alone
    assert.equal(getJob(db, "enc_b")?.job.errorMessage, "other");

    setItem(db, "enc_a", 1, { status: "succeeded", outputs: { latents: "x.npy" }, metadata: null });
    assert.deepEqual(getItem(db, "enc_a", 1)?.outputs, { latents: "x.npy" });
    assert.equal(getItem(db, "enc_a", 0)?.outputs, null);
    setItem(db, "enc_a", 1, { outputs: null });
    assert.equal(getItem(db, "enc_a", 1)?.outputs, null);
    assert.equal(getItem(db, "enc_a", 1)?.status, "succeeded");
    assert.equal(getItem(db, "enc_a", 5), null);
    assert.equal(getJob(db, "enc_missing"), null);

    assert.equal(findKeyBySecret(db, secret)?.id, key.id);
    assert.equal(keyById(db, key.id)?.name, "k");
    revokeKey(db, key.id);
    assert.equal(findKeyBySecret(db, secret), null);
    assert.equal(findKeyBySecret(db, "dfs_not-a-key"), null);
  } finally {
    closeDb(db);
  }
});

/** Runs f with every SQL text the connection prepares recorded. */
function recorded(db: Db, f: () => void): string[] {
  const prepare = db.$client.prepare;
  const seen: string[] = [];
  db.$client.prepare = ((source: string) => {
    seen.push(source);
    return prepare.call(db.$client, source);
  }) as typeof prepare;
  try {
    f();
  } finally {
    db.$client.prepare = prepare;
  }
  return seen;
}

/** SQLite's plan for a statement: its steps' details, joined. */
function plan(db: Db, source: string): string {
  const params = Array((source.match(/\?/g) ?? []).length).fill("x");
  const rows = db.$client.prepare(`EXPLAIN QUERY PLAN ${source}`).all(...params) as {
    detail: string;
  }[];
  return rows.map((r) => r.detail).join(" | ");
}

test("quota counts, claims and a key's list read through indexes led by status or key", () => {
  const db = openDb(join(dir, "plans.sqlite"));
  try {
    const { key } = createKey(db, "k", "user");
    db.transaction(() => {
      for (let i = 0; i < 600; i++) {
        const kind = i % 2 ? "encode" : "generate";
        insertJob(db, { id: `j_${i}`, kind, keyId: key.id, model: "m", options: {}, items: [{}] });
        setJob(db, `j_${i}`, { status: "succeeded", finishedAt: new Date() });
      }
    });
    insertJob(db, {
      id: "j_q",
      kind: "encode",
      keyId: key.id,
      model: "m",
      options: {},
      items: [{}],
    });
    db.$client.exec("ANALYZE"); // whatever the statistics, the plans below must hold

    const queries: [string, () => void, RegExp][] = [
      [
        "a key's active jobs of a lane",
        () => countJobs(db, ["encode", "reconstruct"], ["queued", "running"], key.id),
        /USING COVERING INDEX jobs_key_status_kind \(key_id=\? AND status=\?/,
      ],
      [
        "queued generations",
        () => countJobs(db, ["generate"], ["queued"]),
        /USING COVERING INDEX jobs_status_kind_seq \(status=\? AND kind=\?\)/,
      ],
      [
        "the next queued job of a kind",
        () => claimNextJob(db, ["generate"]),
        /USING INDEX jobs_status_kind_seq \(status=\? AND kind=\?\)/,
      ],
      [
        "a key's jobs of a kind, newest first",
        () => listJobs(db, { kind: "encode", keyId: key.id, limit: 10 }),
        /USING INDEX jobs_key_kind_seq \(key_id=\? AND kind=\?\)/,
      ],
    ];
    for (const [what, run, expected] of queries) {
      const selects = recorded(db, run).filter((s) => /^select .* from "jobs"/i.test(s));
      assert.ok(selects.length > 0, `${what}: no query on jobs was prepared`);
      const [first] = selects;
      assert.match(plan(db, first as string), expected, `${what}: ${first}`);
    }
    assert.equal(countJobs(db, ["encode"], ["queued", "running"], key.id), 1);
    assert.equal(claimNextJob(db, ["encode"])?.job.id, "j_q");
    assert.equal(countJobs(db, ["encode"], ["queued"]), 0);
  } finally {
    closeDb(db);
  }
});
