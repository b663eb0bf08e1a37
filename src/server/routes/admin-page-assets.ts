// The admin page's static files: the page itself (src/server/admin/index.html, app.js,
// app.css, favicon.svg) and the chart library from node_modules (/admin/vendor/uplot/...). Only the files
// listed in ASSETS are reachable.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import { ApiError } from "../api-error.ts";

export const ASSETS_DIR = join(import.meta.dirname, "../admin");
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve("uplot")), ".");

/** Files served as they are; nothing else under these prefixes is reachable. */
const ASSETS: Record<string, { path: string; type: string }> = {
  "assets/app.js": { path: join(ASSETS_DIR, "app.js"), type: "text/javascript; charset=utf-8" },
  "assets/app.css": { path: join(ASSETS_DIR, "app.css"), type: "text/css; charset=utf-8" },
  "assets/favicon.svg": { path: join(ASSETS_DIR, "favicon.svg"), type: "image/svg+xml" },
  "vendor/uplot/uPlot.esm.js": {
    path: join(UPLOT_DIR, "uPlot.esm.js"),
    type: "text/javascript; charset=utf-8",
  },
  "vendor/uplot/uPlot.min.css": {
    path: join(UPLOT_DIR, "uPlot.min.css"),
    type: "text/css; charset=utf-8",
  },
};

/** The page (index.html) as text. */
export function indexHtml(): Promise<string> {
  return readFile(join(ASSETS_DIR, "index.html"), "utf8");
}

export function adminAssetRoutes() {
  const app = new Hono();
  app.get("/:dir{assets|vendor}/*", async (c) => {
    const rel = c.req.path.replace(/^\/admin\//, "");
    const asset = ASSETS[rel];
    if (!asset) throw new ApiError("not_found", `no admin asset "${rel}"`, 404);
    const body = await readFile(asset.path);
    return c.body(body, 200, {
      "content-type": asset.type,
      etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`,
    });
  });
  return app;
}
