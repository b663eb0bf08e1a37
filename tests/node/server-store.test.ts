// The SQLite store and the configuration: migrations, WAL, hashed keys, job claiming order.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError, parseConfig } from "../../src/server/config.ts";
import {
  countKeys,
  createKey,
  findKeyBySecret,
  hashSecret,
  listKeys,
  revokeKey,
} from "../../src/store/api-keys.ts";
import { closeDb, integrityCheck, openDb } from "../../src/store/db.ts";
import { claimNextJob, countJobs, getJob, insertJob, newJobId } from "../../src/store/job-rows.ts";
import { ACTIVE_STATUSES } from "../../src/store/schema.ts";

const dir = mkdtempSync(join(tmpdir(), "diffusable-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("migrations apply on open, WAL is on, integrity is ok, reopening is a no-op", () => {
  const file = join(dir, "a.sqlite");
  const db = openDb(file);
  assert.equal(db.$client.pragma("journal_mode", { simple: true }), "wal");
  assert.equal(db.$client.pragma("foreign_keys", { simple: true }), 1);
  assert.ok((db.$client.pragma("busy_timeout", { simple: true }) as number) > 0);
  const tables = db.$client
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((r) => (r as { name: string }).name);
  for (const t of ["api_keys", "jobs", "job_items"]) assert.ok(tables.includes(t), t);
  assert.equal(integrityCheck(db), "ok");
  closeDb(db);
  const again = openDb(file);
  assert.equal(countKeys(again), 0);
  closeDb(again);
});

test("keys are stored hashed, found by secret, and stop working when revoked", () => {
  const db = openDb(join(dir, "keys.sqlite"));
  const { key, secret } = createKey(db, "alice", "user");
  assert.match(secret, /^dfs_/);
  const stored = db.$client.prepare("SELECT * FROM api_keys").all() as Record<string, unknown>[];
  assert.equal(stored.length, 1);
  assert.equal(stored[0]?.secret_sha256, hashSecret(secret));
  assert.ok(!JSON.stringify(stored).includes(secret), "the secret itself is not stored");
  assert.equal(findKeyBySecret(db, secret)?.id, key.id);
  assert.equal(findKeyBySecret(db, `${secret}x`), null);
  assert.equal(revokeKey(db, key.id)?.id, key.id);
  assert.equal(findKeyBySecret(db, secret), null);
  assert.ok(listKeys(db)[0]?.revokedAt);
  assert.equal(revokeKey(db, "key_nope"), null);
  closeDb(db);
});

test("queued jobs are claimed oldest first, and count against their key", () => {
  const db = openDb(join(dir, "jobs.sqlite"));
  const { key } = createKey(db, "k", "user");
  const ids = [0, 1, 2].map(() => {
    const id = newJobId("enc");
    insertJob(db, {
      id,
      kind: "encode",
      keyId: key.id,
      model: "m",
      options: { mode: "clip" },
      items: [{ sourceName: "a.mp4", inputPath: "/nowhere/a.mp4", inputBytes: 1 }],
    });
    return id;
  });
  assert.equal(countJobs(db, ["encode"], ACTIVE_STATUSES, key.id), 3);
  assert.equal(claimNextJob(db)?.job.id, ids[0]);
  assert.equal(claimNextJob(db)?.job.id, ids[1]);
  const third = claimNextJob(db);
  assert.equal(third?.job.id, ids[2]);
  assert.equal(third?.job.status, "running");
  assert.equal(third?.job.attempts, 1);
  assert.equal(claimNextJob(db), null);
  assert.deepEqual(getJob(db, ids[0] as string)?.job.options, { mode: "clip" });
  closeDb(db);
});

test("configuration: defaults, and one readable error naming every bad variable", () => {
  const config = parseConfig({});
  assert.equal(config.port, 8080);
  assert.ok(config.dataDir.endsWith("/data"));
  assert.ok(config.modelsDir.endsWith("/models"));
  assert.deepEqual(config.providers, ["cpu"]);
  assert.throws(
    () => parseConfig({ PORT: "eighty", DIFFUSABLE_MAX_FILES: "0", DIFFUSABLE_PROVIDERS: "tpu" }),
    (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^invalid configuration: /);
      for (const name of ["PORT", "DIFFUSABLE_MAX_FILES", "DIFFUSABLE_PROVIDERS"]) {
        assert.ok(err.message.includes(name), `${name} in ${err.message}`);
      }
      assert.ok(!err.message.includes("\n"));
      return true;
    },
  );
});
