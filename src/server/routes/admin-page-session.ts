// Signing in and out of the admin page: the sign-in form, POST /admin/session (an admin API key
// for an HttpOnly, SameSite=Strict session cookie; the token itself is admin-session.ts's), and
// POST /admin/session/delete. GET /admin shows the page to a signed-in admin, else the form.

import { type Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { ApiKeyRow, Store } from "../../store/store.ts";
import { type AdminSessions, SESSION_COOKIE } from "../admin-session.ts";
import { ApiError } from "../api-error.ts";

import { indexHtml } from "./admin-page-assets.ts";

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch] as string,
  );

function signInPage(message: string | null): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffusable admin: sign in</title>
<link rel="icon" href="/admin/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/admin/assets/app.css">
</head>
<body class="signin">
<main>
<h1>diffusable admin</h1>
${message ? `<p class="error" role="alert" id="signin-error">${escapeHtml(message)}</p>` : ""}
<form method="post" action="/admin/session" id="signin">
<label for="key">Admin API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required spellcheck="false">
<button type="submit">Sign in</button>
</form>
<p class="hint">Make a key with <code>npm run keys -- create --name me --role admin</code>.</p>
</main>
</body>
</html>
`;
}

export interface AdminEnv {
  Variables: { adminKey: ApiKeyRow };
}

const secure = (c: Context) =>
  new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";

const wantsJson = (c: Context) =>
  (c.req.header("accept") ?? "").includes("application/json") &&
  !(c.req.header("accept") ?? "").includes("text/html");

/** The admin key of the request's session cookie, or null. */
export function sessionAdmin(
  db: Store,
  sessions: AdminSessions,
  c: Context,
): Promise<ApiKeyRow | null> {
  return sessions.adminKey(db, getCookie(c, SESSION_COOKIE));
}

export function adminSessionRoutes(db: Store, sessions: AdminSessions) {
  const app = new Hono<AdminEnv>();
  const adminOf = (c: Context) => sessionAdmin(db, sessions, c);
  const page = async (c: Context) => {
    if (!(await adminOf(c))) return c.html(signInPage(null));
    return c.html(await indexHtml());
  };
  app.get("/", page);
  app.get("/index.html", page);

  app.post("/session", async (c) => {
    const type = c.req.header("content-type") ?? "";
    let secret: unknown;
    const json = type.includes("application/json");
    if (json) {
      secret = ((await c.req.json().catch(() => ({}))) as { key?: unknown }).key;
    } else {
      secret = (await c.req.parseBody().catch(() => ({}) as Record<string, unknown>)).key;
    }
    const fail = (status: 400 | 401 | 403, code: string, message: string) => {
      if (json) throw new ApiError(code, message, status);
      return c.html(signInPage(message), status);
    };
    if (typeof secret !== "string" || secret.trim() === "") {
      return fail(400, "invalid_field", "key: enter an admin API key");
    }
    const key = await db.findKeyBySecret(secret.trim());
    if (!key) return fail(401, "invalid_api_key", "that API key is not valid (unknown or revoked)");
    if (key.role !== "admin") {
      return fail(403, "forbidden", "that is a user key; the admin page needs an admin key");
    }
    setCookie(c, SESSION_COOKIE, sessions.issue(key.id), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/admin",
      secure: secure(c),
      maxAge: Math.floor(sessions.ttlMs / 1000),
    });
    if (json)
      return c.json({ key: { id: key.id, name: key.name }, expiresInS: sessions.ttlMs / 1000 });
    return c.redirect("/admin", 303);
  });

  app.post("/session/delete", (c) => {
    sessions.revoke(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: "/admin", secure: secure(c) });
    if (wantsJson(c)) return c.json({ signedOut: true });
    return c.redirect("/admin", 303);
  });
  return app;
}
