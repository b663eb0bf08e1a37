// Admin-only routes: API keys.

import { Hono } from "hono";
import type { Store } from "../../store/store.ts";
import { ApiError } from "../api-error.ts";
import { type AppEnv, requireAdmin } from "../auth.ts";
import { CreateKeySchema, describeZodError } from "../schemas.ts";

export function adminRoutes(db: Store) {
  return new Hono<AppEnv>()
    .use(requireAdmin)
    .get("/keys", async (c) => c.json({ keys: await db.listKeys() }))
    .post("/keys", async (c) => {
      const body = await c.req.json().catch(() => {
        throw new ApiError("malformed_json", "the body is not valid JSON", 400);
      });
      const parsed = CreateKeySchema.safeParse(body);
      if (!parsed.success) throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
      const { key, secret } = await db.createKey(parsed.data.name, parsed.data.role);
      return c.json({ key, secret }, 201);
    })
    .delete("/keys/:id", async (c) => {
      const key = await db.revokeKey(c.req.param("id"));
      if (!key) throw new ApiError("key_not_found", `no API key "${c.req.param("id")}"`, 404);
      return c.json({ key });
    });
}
