// The two stores behind one interface (src/store/store.ts): the same script of calls gives the
// same answers on the embedded SQLite file and on PostgreSQL (a real server the test starts and
// stops, tests/node/pg-server.ts): jobs and items, idempotency, quotas' counts, claiming, cancel,
// lists, deletion, API keys, webhook leases. PostgreSQL's own: a job's row and its queue entry
// are one transaction, and processes that open the database together migrate it once.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfigError, parseConfig } from "../../src/server/config.ts";
import { openDb } from "../../src/store/db.ts";
import { newJobId } from "../../src/store/job-rows.ts";
import { openPgStore, PG_MIGRATIONS_DIR } from "../../src/store/pg-store.ts";
import { ACTIVE_STATUSES } from "../../src/store/schema.ts";
import { sqliteStore } from "../../src/store/sqlite-store.ts";
import type { Store } from "../../src/store/store.ts";
import { type PostgresServer, startPostgres } from "./pg-server.ts";
import { runCli, tempDir } from "./server-helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "diffusable-contract-"));
let pg: PostgresServer;
before(async () => {
  pg = await startPostgres();
});
after(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(existsSync(pg.dir), false, "the server's folder is left behind");
});

const newJob = (keyId: string | null, extra: Record<string, unknown> = {}) => ({
  id: newJobId("enc"),
  kind: "encode",
  keyId,
  model: "m",
  options: { mode: "clip", zeta: 1, alpha: [2, 3] },
  items: [
    { sourceName: "a.mp4", inputPath: "/nowhere/a.mp4", inputBytes: 5_000_000_000 },
    { sourceName: "b.mp4", inputPath: "/nowhere/b.mp4", inputBytes: 2 },
  ],
  ...extra,
});

/** The same script on either store. */
function contract(name: string, open: () => Promise<Store>) {
  describe(name, () => {
    let store: Store;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store?.close();
    });

    test("API keys: hashed, found by secret, revoked, the last admin kept", async () => {
      const { key, secret } = await store.createKey("alice", "user");
      assert.match(secret, /^dfs_/);
      assert.equal((await store.findKeyBySecret(secret))?.id, key.id);
      assert.equal(await store.findKeyBySecret(`${secret}x`), null);
      assert.equal((await store.keyById(key.id))?.name, "alice");
      const admin = await store.createKey("root", "admin");
      await assert.rejects(store.revokeKey(admin.key.id), /last active admin key/);
      assert.equal((await store.revokeKey(key.id))?.id, key.id);
      assert.ok((await store.revokeKey(key.id))?.revokedAt, "revoking again is a no-op");
      assert.equal(await store.findKeyBySecret(secret), null);
      assert.equal(await store.revokeKey("key_nope"), null);
      assert.equal(await store.countKeys(), 2);
      assert.deepEqual((await store.listKeys()).map((k) => k.name).sort(), ["alice", "root"]);
    });

    test("jobs: inserted with items, read back as written, claimed oldest first", async () => {
      const { key } = await store.createKey("k", "user");
      const jobs = [];
      for (let i = 0; i < 3; i++) jobs.push(await store.insertJob(newJob(key.id, { steps: 7 })));
      const [a, b, c] = jobs.map((j) => j.job.id) as [string, string, string];
      const got = await store.getJob(a);
      assert.equal(got?.job.status, "queued");
      assert.equal(got?.job.steps, 7);
      // JSON comes back with its keys in the order they were written
      assert.equal(JSON.stringify(got?.job.options), '{"mode":"clip","zeta":1,"alpha":[2,3]}');
      assert.deepEqual(
        got?.items.map((i) => [i.index, i.sourceName, i.inputBytes, i.status]),
        [
          [0, "a.mp4", 5_000_000_000, "queued"],
          [1, "b.mp4", 2, "queued"],
        ],
      );
      assert.ok(got?.job.createdAt instanceof Date);
      assert.equal((await store.getItem(a, 1))?.sourceName, "b.mp4");
      assert.equal(await store.getItem(a, 2), null);
      assert.equal(await store.countJobs(["encode"], ACTIVE_STATUSES, key.id), 3);
      assert.equal(await store.countJobs(["decode"], ACTIVE_STATUSES, key.id), 0);

      const first = await store.claimNextJob(["encode"]);
      assert.equal(first?.job.id, a);
      assert.equal(first?.job.status, "running");
      assert.equal(first?.job.attempts, 1);
      // claimJob takes a running job again (its runner died): attempts 2
      assert.equal((await store.claimJob(a))?.job.attempts, 2);
      assert.equal((await store.claimNextJob(["encode"]))?.job.id, b);

      await store.setItem(a, 0, {
        status: "succeeded",
        outputs: { latents: "/x/0.npy" },
        outputSha256: "ab",
        metadata: { frames: 3, fps: 8 },
        finishedAt: new Date(1_700_000_000_123),
      });
      await store.setJob(a, { progress: 0.5, step: 1 });
      const after1 = await store.getJob(a);
      assert.deepEqual(after1?.items[0]?.outputs, { latents: "/x/0.npy" });
      assert.deepEqual(after1?.items[0]?.metadata, { frames: 3, fps: 8 });
      assert.equal(after1?.items[0]?.finishedAt?.getTime(), 1_700_000_000_123);
      assert.equal(after1?.job.progress, 0.5);

      assert.equal(await store.cancelJob(c), true);
      assert.equal(await store.cancelJob(c), false, "already over");
      assert.deepEqual(
        (await store.getJob(c))?.items.map((i) => i.status),
        ["canceled", "canceled"],
      );
      assert.equal(await store.claimJob(c), null, "a canceled job is not claimed");
      const statuses = await store.statusesOf([a, c, "enc_gone"]);
      assert.equal(statuses.size, 2);
      assert.equal(statuses.get(a), "running");
      assert.equal(statuses.get(c), "canceled");

      // lists: newest first, paged by seq, of one key or all
      const page = await store.listJobs({ kind: "encode", keyId: key.id, limit: 2 });
      assert.deepEqual(
        page.map((j) => j.job.id),
        [c, b],
      );
      const rest = await store.listJobs({
        kind: "encode",
        keyId: key.id,
        limit: 2,
        beforeSeq: page[1]?.job.seq as number,
      });
      assert.deepEqual(
        rest.map((j) => j.job.id),
        [a],
      );
      assert.equal(rest[0]?.items.length, 2);
      assert.deepEqual(
        (await store.listJobs({ kind: "encode", keyId: key.id, limit: 9, status: "canceled" })).map(
          (j) => j.job.id,
        ),
        [c],
      );
      assert.deepEqual(
        (await store.jobsWithStatus("running")).map((j) => j.job.id),
        [a, b],
      );

      // deletion: only finished jobs
      assert.equal(await store.deleteJob(a), false, "still running");
      await store.setJob(c, { finishedAt: new Date(Date.now() - 10_000) });
      assert.deepEqual(await store.finishedJobsBefore(new Date()), [c]);
      assert.equal(await store.deleteJob(c), true);
      assert.equal(await store.getJob(c), null);
    });

    test("idempotency: one job per key, kind and Idempotency-Key", async () => {
      const { key } = await store.createKey("idem", "user");
      const job = await store.insertJob(
        newJob(key.id, { idempotencyKey: "k-1", requestSha256: "sha" }),
      );
      assert.equal((await store.jobByIdempotencyKey(key.id, "encode", "k-1"))?.job.id, job.job.id);
      assert.equal(await store.jobByIdempotencyKey(key.id, "decode", "k-1"), null);
      await assert.rejects(
        store.insertJob(newJob(key.id, { idempotencyKey: "k-1", requestSha256: "sha" })),
      );
    });

    test("webhooks: due rows of finished jobs, set by their delivery", async () => {
      const job = await store.insertJob(newJob(null));
      await store.insertWebhook({ id: `msg_${job.job.id}`, jobId: job.job.id, url: "http://x/" });
      await store.setJob(job.job.id, { status: "succeeded", finishedAt: new Date() });
      const due = await store.dueWebhooks(new Date(Date.now() + 1000), 10);
      assert.deepEqual(
        due.map((w) => [w.id, w.url, w.attempts]),
        [[`msg_${job.job.id}`, "http://x/", 0]],
      );
      await store.setWebhook(`msg_${job.job.id}`, { status: "delivered", attempts: 1 });
      assert.deepEqual(await store.dueWebhooks(new Date(Date.now() + 1000), 10), []);
    });
  });
}

contract("SQLite", async () => sqliteStore(openDb(join(dir, "contract.sqlite"))));
contract("PostgreSQL", async () => await openPgStore(pg.url));

describe("PostgreSQL only", () => {
  test("processes that open the database together migrate it once", async () => {
    const url = `${pg.url}_fresh`;
    const admin = await openPgStore(pg.url);
    try {
      await admin.pool.query("CREATE DATABASE diffusable_fresh");
    } finally {
      await admin.close();
    }
    const stores = await Promise.all([1, 2, 3, 4].map(() => openPgStore(url)));
    try {
      const { rows } = await (stores[0] as (typeof stores)[0]).pool.query(
        "SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations",
      );
      // each migration once, however many processes applied them together
      const journal = JSON.parse(
        readFileSync(join(PG_MIGRATIONS_DIR, "meta", "_journal.json"), "utf8"),
      ) as { entries: unknown[] };
      assert.ok(journal.entries.length >= 2);
      assert.equal(rows[0]?.n, journal.entries.length);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  test("the CLI's keys commands use DIFFUSABLE_DATABASE_URL's store", async () => {
    const env = { DIFFUSABLE_DATABASE_URL: pg.url };
    const made = runCli(tempDir("cli-pg"), ["keys", "create", "--name", "cli-pg"], env);
    assert.equal(made.code, 0, made.stderr);
    const store = await openPgStore(pg.url);
    try {
      const secret = made.stdout.trim().split("\n").at(-1) as string;
      assert.equal((await store.findKeyBySecret(secret))?.name, "cli-pg");
    } finally {
      await store.close();
    }
    const listed = runCli(tempDir("cli-pg"), ["keys", "list"], env);
    assert.match(listed.stdout, /\tcli-pg$/m);
  });

  test("a job is not inserted when its queue entry fails, and a webhook is leased to one process", async () => {
    const failing = await openPgStore(pg.url, {
      onJobInserted: async (_job, tx) => {
        await tx.executeSql("SELECT 1");
        throw new Error("the queue is gone");
      },
    });
    const other = await openPgStore(pg.url);
    try {
      const job = newJob(null);
      await assert.rejects(failing.insertJob(job), /the queue is gone/);
      assert.equal(await other.getJob(job.id), null, "the row was rolled back with the entry");

      const done = await other.insertJob(newJob(null));
      await other.insertWebhook({
        id: `msg_l_${done.job.id}`,
        jobId: done.job.id,
        url: "http://y/",
      });
      await other.setJob(done.job.id, { status: "failed", finishedAt: new Date() });
      const at = new Date(Date.now() + 1000);
      const [x, y] = await Promise.all([failing.dueWebhooks(at, 10), other.dueWebhooks(at, 10)]);
      const taken = [...x, ...y].filter((w) => w.id === `msg_l_${done.job.id}`);
      assert.equal(taken.length, 1, "taken by one of the two");
      assert.deepEqual(
        (await other.dueWebhooks(at, 10)).filter((w) => w.id === `msg_l_${done.job.id}`),
        [],
        "leased: not due again within the minute",
      );
    } finally {
      await failing.close();
      await other.close();
    }
  });
});

test("configuration: DIFFUSABLE_DATABASE_URL is a postgres URL, never echoed", () => {
  assert.equal(parseConfig({}).databaseUrl, null);
  assert.equal(parseConfig({}).workerTimeoutMs, 30_000);
  const url = "postgres://u:pw@db.example:5433/d";
  assert.equal(parseConfig({ DIFFUSABLE_DATABASE_URL: url }).databaseUrl, url);
  assert.equal(
    parseConfig({ DIFFUSABLE_DATABASE_URL: "postgresql://h/d" }).databaseUrl,
    "postgresql://h/d",
  );
  for (const bad of ["mysql://u:secretpw@h/d", "secretpw", "postgres://"]) {
    assert.throws(
      () => parseConfig({ DIFFUSABLE_DATABASE_URL: bad }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^invalid configuration: DIFFUSABLE_DATABASE_URL \(/);
        assert.match(err.message, /postgres:\/\/ or postgresql:\/\//);
        assert.ok(!err.message.includes("secretpw"), err.message);
        assert.ok(!err.message.includes("\n"));
        return true;
      },
    );
  }
});
