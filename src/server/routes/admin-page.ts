// The admin page (/admin): sign-in and sessions (admin-page-session.ts), the static files
// (admin-page-assets.ts) and the JSON API the page reads (admin-page-api.ts), behind one
// middleware that refuses cross-site POSTs and sets the security headers.

import { Hono } from "hono";
import { AdminSessions } from "../admin-session.ts";
import { ApiError } from "../api-error.ts";
import { type AdminPageDeps, adminApiRoutes } from "./admin-page-api.ts";
import { adminAssetRoutes } from "./admin-page-assets.ts";
import { type AdminEnv, adminSessionRoutes } from "./admin-page-session.ts";

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const hostOf = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
};

export type { AdminEnv, AdminPageDeps };

export function adminPageRoutes(deps: AdminPageDeps) {
  const sessions = deps.sessions ?? new AdminSessions({ secret: deps.config.adminSecret });
  const app = new Hono<AdminEnv>();

  /** A cross-site POST (Origin of another host) is refused, on top of SameSite=Strict. */
  app.use(async (c, next) => {
    if (c.req.method === "POST") {
      const origin = c.req.header("origin");
      if (origin && origin !== "null" && hostOf(origin) !== new URL(c.req.url).host) {
        throw new ApiError("cross_origin", "cross-origin requests to /admin are refused", 403);
      }
    }
    await next();
    c.header("Cache-Control", "no-store");
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    if ((c.res.headers.get("content-type") ?? "").startsWith("text/html")) {
      c.header("Content-Security-Policy", CSP);
      c.header("X-Frame-Options", "DENY");
    }
  });

  app.route("/", adminSessionRoutes(deps.db, sessions));
  app.route("/", adminAssetRoutes());
  app.route("/api", adminApiRoutes(deps, sessions));
  return app;
}
