// Admin page sessions without a table: the cookie holds `<key id>.<expiry ms>.<nonce>.<HMAC>`,
// signed with a secret (DIFFUSABLE_ADMIN_SECRET, else random per process, so a restart signs
// everyone out). Every request re-checks the key in the key store (still there, not revoked, still
// admin), so revoking the key ends its sessions; signing out adds the token's hash to an in-memory
// deny list kept until the token would have expired anyway.

import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ApiKeyRow, Store } from "../store/store.ts";

export const SESSION_COOKIE = "diffusable_admin";
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

const b64 = (buf: Buffer) => buf.toString("base64url");
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

export class AdminSessions {
  readonly #secret: Buffer;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** sha256 of signed-out tokens -> their expiry. */
  readonly #revoked = new Map<string, number>();

  constructor(opts: { secret?: string | undefined; ttlMs?: number; now?: () => number } = {}) {
    this.#secret = opts.secret ? Buffer.from(opts.secret, "utf8") : randomBytes(32);
    this.#ttlMs = opts.ttlMs ?? SESSION_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  #sign(payload: string): string {
    return b64(createHmac("sha256", this.#secret).update(payload).digest());
  }

  /** A new session token for this key. */
  issue(keyId: string): string {
    const payload = `${keyId}.${this.#now() + this.#ttlMs}.${b64(randomBytes(9))}`;
    return `${payload}.${this.#sign(payload)}`;
  }

  /** The key id of a valid, unexpired, not signed-out token; else null. */
  verify(token: string | undefined): string | null {
    if (!token || token.length > 512) return null;
    const parts = token.split(".");
    if (parts.length !== 4) return null;
    const [keyId, expiry, , mac] = parts as [string, string, string, string];
    const expected = Buffer.from(this.#sign(parts.slice(0, 3).join(".")));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (!/^\d+$/.test(expiry) || Number(expiry) <= this.#now()) return null;
    if (this.#revoked.has(sha(token))) return null;
    return keyId;
  }

  /** Signs a token out (until it would have expired). */
  revoke(token: string | undefined): void {
    if (!token || this.verify(token) === null) return;
    const now = this.#now();
    for (const [h, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(h);
    this.#revoked.set(sha(token), Number(token.split(".")[1]));
  }

  /** The admin key behind a token, re-checked in the key store; null otherwise. */
  async adminKey(db: Store, token: string | undefined): Promise<ApiKeyRow | null> {
    const keyId = this.verify(token);
    if (!keyId) return null;
    const row = await db.keyById(keyId);
    return row && !row.revokedAt && row.role === "admin" ? row : null;
  }
}
