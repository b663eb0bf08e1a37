// Admin-only routes: API keys.

import { Hono } from "hono";
import { createKey, listKeys, revokeKey } from "../../store/api-keys.ts";
import type { Db } from "../../store/db.ts";
import { ApiError } from "../api-error.ts";
import { type AppEnv, requireAdmin } from "../auth.ts";
import { CreateKeySchema, describeZodError } from "../schemas.ts";

export function adminRoutes(db: Db) {
  return new Hono<AppEnv>()
    .use(requireAdmin)
    .get("/keys", (c) => c.json({ keys: listKeys(db) }))
    .post("/keys", async (c) => {
      const body = await c.req.json().catch(() => {
        throw new ApiError("malformed_json", "the body is not valid JSON", 400);
      });
      const parsed = CreateKeySchema.safeParse(body);
      if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
      const { key, secret } = createKey(db, parsed.data.name, parsed.data.role);
      return c.json({ key, secret }, 201);
    })
    .delete("/keys/:id", (c) => {
      const key = revokeKey(db, c.req.param("id"));
      if (!key) throw new ApiError("key_not_found", `no API key "${c.req.param("id")}"`, 404);
      return c.json({ key });
    });
}
