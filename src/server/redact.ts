// What a user key may see of the server's file system: nothing. Run rows, artifacts and status
// events hold absolute paths (run folders, checkpoints, datasets); for non-admin keys every
// absolute path inside a JSON value becomes its form relative to the repository (when it is
// inside it) or "<server>/<last part>".

import { basename, relative } from "node:path";
import { REPO_ROOT } from "../env.ts";

const ABSOLUTE = /(^|[\s"'(=:,[])(\/[^\s"'(),;[\]]+)/g;

function shown(path: string): string {
  const rel = relative(REPO_ROOT, path);
  if (rel && !rel.startsWith("..") && !rel.startsWith("/")) return rel;
  return `<server>/${basename(path)}`;
}

function redactString(s: string): string {
  // A lone "/" or an API path ("/v1/...") is not a file.
  return s.replace(ABSOLUTE, (whole, lead: string, path: string) =>
    path.split("/").length > 2 && !path.startsWith("/v1/") ? `${lead}${shown(path)}` : whole,
  );
}

/** An error message as anyone may see it: every absolute path becomes its last part ("0.mp4"),
 *  for job and generation errors that quote a tool's words about a file in the data dir. */
export function hidePaths(message: string): string {
  return message.replace(ABSOLUTE, (whole, lead: string, path: string) =>
    path.split("/").length > 2 && !path.startsWith("/v1/") ? `${lead}${basename(path)}` : whole,
  );
}

/** A copy of `value` with every absolute server path replaced (see above). */
export function redactPaths<T>(value: T): T {
  if (typeof value === "string") return redactString(value) as T;
  if (Array.isArray(value)) return value.map(redactPaths) as T;
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactPaths(v)])) as T;
  }
  return value;
}
