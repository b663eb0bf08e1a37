// Bearer API keys: `Authorization: Bearer <secret>`; the secret's sha256 is looked up in api_keys.
// `requireKey` sets c.var.apiKey; `requireAdmin` also wants the admin role.

import type { MiddlewareHandler } from "hono";
import type { ApiKeyRow, Store } from "../store/store.ts";
import { ApiError } from "./api-error.ts";

export interface AppEnv {
  Variables: { apiKey: ApiKeyRow };
}

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="diffusable"' };

export function requireKey(db: Store): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (!header) {
      throw new ApiError(
        "missing_api_key",
        "this route needs an API key: send `Authorization: Bearer <key>`",
        401,
        { headers: CHALLENGE },
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const key = match?.[1] ? await db.findKeyBySecret(match[1]) : null;
    if (!key) {
      throw new ApiError("invalid_api_key", "the API key is not valid (unknown or revoked)", 401, {
        headers: {
          ...CHALLENGE,
        },
      });
    }
    c.set("apiKey", key);
    await next();
  };
}

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.var.apiKey.role !== "admin") {
    throw new ApiError("forbidden", "this route needs an admin API key", 403);
  }
  await next();
};
