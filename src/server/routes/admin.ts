// Admin-only routes: API keys.

import { $ } from "@hono/zod-openapi";
import type { Store } from "../../store/store.ts";
import { ApiError } from "../api-error.ts";
import { requireAdmin } from "../auth.ts";
import {
  documentedRoutes,
  errorResponses,
  IdParams,
  jsonRequestBody,
  jsonResponse,
  route,
} from "../openapi.ts";
import {
  CreateKeySchema,
  describeZodError,
  KeyCreatedSchema,
  KeyEnvelopeSchema,
  KeyListSchema,
} from "../schemas.ts";

export function adminRoutes(db: Store) {
  const app = $(documentedRoutes().use(requireAdmin));
  return app
    .openapi(
      route({
        method: "get",
        path: "/keys",
        tags: ["admin"],
        responses: { 200: jsonResponse(KeyListSchema, "keys"), ...errorResponses(403) },
      }),
      async (c) => c.json({ keys: await db.listKeys() }, 200),
    )
    .openapi(
      route({
        method: "post",
        path: "/keys",
        tags: ["admin"],
        request: { body: jsonRequestBody(app, "CreateKey", CreateKeySchema) },
        responses: {
          201: jsonResponse(KeyCreatedSchema, "the key; the secret is shown only here"),
          ...errorResponses(400, 403),
        },
      }),
      async (c) => {
        const body = await c.req.json().catch(() => {
          throw new ApiError("malformed_json", "the body is not valid JSON", 400);
        });
        const parsed = CreateKeySchema.safeParse(body);
        if (!parsed.success) {
          throw new ApiError("invalid_field", describeZodError(parsed.error), 400);
        }
        const { key, secret } = await db.createKey(parsed.data.name, parsed.data.role);
        return c.json({ key, secret }, 201);
      },
    )
    .openapi(
      route({
        method: "delete",
        path: "/keys/{id}",
        tags: ["admin"],
        summary: "revoke a key (never the last active admin key: 409 last_admin)",
        request: { params: IdParams },
        responses: {
          200: jsonResponse(KeyEnvelopeSchema, "revoked"),
          ...errorResponses(403, 404, 409),
        },
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const key = await db.revokeKey(id);
        if (!key) throw new ApiError("key_not_found", `no API key "${id}"`, 404);
        return c.json({ key }, 200);
      },
    );
}
