// openDb keeps compiled statements by SQL text (src/store/db.ts): a query asked again reuses its
// statement, drizzle's raw (array) mode on one use does not leak into the next, writes between
// reads are seen, and the cache stays bounded.

import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { eq } from "drizzle-orm";
import { createKey, findKeyBySecret, revokeKey } from "../../src/store/api-keys.ts";
import { closeDb, openDb } from "../../src/store/db.ts";
import { apiKeys } from "../../src/store/schema.ts";
import { tempDir } from "./server-helpers.ts";

const dir = tempDir("statement-cache");
after(() => rmSync(dir, { recursive: true, force: true }));

test("a repeated query reuses its statement and sees every write in between", () => {
  const db = openDb(join(dir, "a.sqlite"));
  try {
    const { key, secret } = createKey(db, "k", "user");
    const first = db.$client.prepare("SELECT id FROM api_keys WHERE id = ?");
    assert.equal(db.$client.prepare("SELECT id FROM api_keys WHERE id = ?"), first);
    assert.equal(findKeyBySecret(db, secret)?.id, key.id);
    revokeKey(db, key.id);
    assert.equal(findKeyBySecret(db, secret), null); // the cached read sees the revocation
    // drizzle reads rows as arrays (raw mode); a plain use of the same text gets objects again
    const sqlText = "SELECT id, name FROM api_keys";
    assert.deepEqual(db.$client.prepare(sqlText).raw().all(), [[key.id, "k"]]);
    assert.deepEqual(db.$client.prepare(sqlText).all(), [{ id: key.id, name: "k" }]);
    const rows = db.select().from(apiKeys).where(eq(apiKeys.id, key.id)).all();
    assert.equal(rows[0]?.name, "k");
  } finally {
    closeDb(db);
  }
});

test("the cache is bounded: the least recently used statement is compiled again", () => {
  const db = openDb(join(dir, "b.sqlite"));
  try {
    const keep = db.$client.prepare("SELECT 0 AS n");
    for (let i = 1; i <= 300; i++) {
      assert.equal((db.$client.prepare(`SELECT ${i} AS n`).get() as { n: number }).n, i);
    }
    assert.notEqual(db.$client.prepare("SELECT 0 AS n"), keep);
    assert.equal(db.$client.prepare("SELECT 300 AS n"), db.$client.prepare("SELECT 300 AS n"));
  } finally {
    closeDb(db);
  }
});
