// API keys: a secret is shown once at creation; only its sha256 is stored. Lookups go by hash.

import { createHash, randomBytes } from "node:crypto";
import { and, asc, eq, isNull, sql } from "drizzle-orm";
import { AppError } from "../app-error.ts";
import { type Db, prepared } from "./db.ts";
import { type ApiKeyRow, apiKeys, type KeyRole } from "./schema.ts";

export const SECRET_PREFIX = "dfs_";

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export interface PublicKey {
  id: string;
  name: string;
  role: KeyRole;
  createdAt: string;
  revokedAt: string | null;
}

export function publicKey(row: ApiKeyRow): PublicKey {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    createdAt: row.createdAt.toISOString(),
    revokedAt: row.revokedAt ? row.revokedAt.toISOString() : null,
  };
}

/** Creates a key; the returned secret is not stored anywhere and cannot be recovered. */
export function createKey(db: Db, name: string, role: KeyRole): { key: PublicKey; secret: string } {
  const id = `key_${randomBytes(6).toString("hex")}`;
  const secret = `${SECRET_PREFIX}${randomBytes(24).toString("base64url")}`;
  const row = db
    .insert(apiKeys)
    .values({ id, name, role, secretSha256: hashSecret(secret) })
    .returning()
    .get();
  return { key: publicKey(row), secret };
}

export function listKeys(db: Db): PublicKey[] {
  return db
    .select()
    .from(apiKeys)
    .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id))
    .all()
    .map(publicKey);
}

/**
 * Marks the key revoked; returns it, or null when there is no such key. Idempotent. The last
 * active admin key is never revoked (AppError "last_admin", 409): nobody could manage keys after.
 */
export function revokeKey(db: Db, id: string): PublicKey | null {
  const row = db.select().from(apiKeys).where(eq(apiKeys.id, id)).get();
  if (!row) return null;
  if (row.revokedAt) return publicKey(row);
  if (row.role === "admin") {
    const admins = db
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(eq(apiKeys.role, "admin"), isNull(apiKeys.revokedAt)))
      .all();
    if (admins.length <= 1) {
      throw new AppError(
        "last_admin",
        `Key "${id}" is the last active admin key; create another admin key before revoking it.`,
        409,
      );
    }
  }
  return publicKey(
    db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.id, id)).returning().get() ??
      row,
  );
}

/** The live (not revoked) key with this secret, or null. */
export function findKeyBySecret(db: Db, secret: string): ApiKeyRow | null {
  const row = prepared(db, "keyBySecret", () =>
    db
      .select()
      .from(apiKeys)
      .where(eq(apiKeys.secretSha256, sql.placeholder("sha256")))
      .prepare(),
  ).get({ sha256: hashSecret(secret) });
  return row && !row.revokedAt ? row : null;
}

export function keyById(db: Db, id: string): ApiKeyRow | null {
  return (
    prepared(db, "keyById", () =>
      db
        .select()
        .from(apiKeys)
        .where(eq(apiKeys.id, sql.placeholder("id")))
        .prepare(),
    ).get({ id }) ?? null
  );
}

export function countKeys(db: Db): number {
  return (db.$client.prepare("SELECT count(*) AS n FROM api_keys").get() as { n: number }).n;
}
