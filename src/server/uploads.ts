// Multipart uploads: parse the form (the body size is capped by the bodyLimit middleware), check
// the file count, and store the files in the data dir before a job refers to them. Files are first
// written to uploads/.tmp-<job>/ and the folder is renamed to uploads/<job>/ once every file is in
// and checked; on any error the folder is removed, so no partial upload is left behind.

import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import type { Context } from "hono";
import { TMP_PREFIX, uploadsDir } from "../pipeline/jobs.ts";
import { ApiError } from "./errors.ts";

export interface MultipartForm {
  fields: Record<string, string>;
  files: File[];
}

export interface SavedUpload {
  sourceName: string;
  path: string;
  bytes: number;
}

/** File fields accepted: "files" (repeatable) and "file". */
export const FILE_FIELDS = ["files", "file"];

export async function readMultipart(c: Context, maxFiles: number): Promise<MultipartForm> {
  const type = c.req.header("content-type") ?? "";
  if (!/^multipart\/form-data\s*;/i.test(type) || !/boundary=/i.test(type)) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `expected a multipart/form-data body with a boundary, got ${type ? `"${type}"` : "no content-type"}`,
    );
  }
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch (err) {
    if ((err as { status?: number }).status === 413) throw err;
    throw new ApiError(
      400,
      "malformed_multipart",
      `the multipart body cannot be parsed: ${(err as Error).message}`,
    );
  }
  const fields: Record<string, string> = {};
  const files: File[] = [];
  for (const [name, value] of form.entries()) {
    if (typeof value === "string") {
      if (FILE_FIELDS.includes(name)) {
        throw new ApiError(400, "invalid_field", `${name}: expected a file, got a text field`);
      }
      fields[name] = value;
    } else if (FILE_FIELDS.includes(name)) {
      files.push(value);
      if (files.length > maxFiles) {
        throw new ApiError(
          400,
          "too_many_files",
          `files: at most ${maxFiles} files per request (got more)`,
        );
      }
    } else {
      throw new ApiError(400, "invalid_field", `${name}: unexpected file field (use "files")`);
    }
  }
  if (files.length === 0) {
    throw new ApiError(400, "missing_file", "files: at least one file is required");
  }
  return { fields, files };
}

/** The client's file name without any path, for display; never used as a path. */
export function sourceName(file: File, index: number): string {
  const name = basename(String(file.name ?? "").replaceAll("\\", "/")).slice(0, 200);
  return name || `file${index}`;
}

/**
 * Stores the files for this job and runs `check` on each (e.g. a probe); returns them in order.
 * Throws (leaving nothing behind) when a file is empty or fails its check.
 */
export async function saveUploads(
  dataDir: string,
  jobId: string,
  files: File[],
  check: (path: string, name: string) => Promise<void>,
): Promise<SavedUpload[]> {
  const root = uploadsDir(dataDir);
  const staging = join(root, `${TMP_PREFIX}${jobId}`);
  const final = uploadsDir(dataDir, jobId);
  await mkdir(staging, { recursive: true });
  try {
    const saved: SavedUpload[] = [];
    for (const [index, file] of files.entries()) {
      const name = sourceName(file, index);
      if (file.size === 0) {
        throw new ApiError(400, "empty_file", `files[${index}] "${name}": the file is empty`);
      }
      const ext = extname(name).toLowerCase();
      const stored = `${index}${/^\.[a-z0-9]{1,8}$/.test(ext) ? ext : ""}`;
      await writeFile(join(staging, stored), new Uint8Array(await file.arrayBuffer()));
      try {
        await check(join(staging, stored), name);
      } catch (err) {
        if (err instanceof ApiError) {
          throw new ApiError(err.status, err.code, `files[${index}] "${name}": ${err.message}`);
        }
        const e = err as { status?: number; code?: string; message?: string };
        throw new ApiError(
          e.status && e.status >= 400 && e.status < 500 ? (e.status as 400) : 422,
          e.code ?? "invalid_file",
          `files[${index}] "${name}": ${(e.message ?? String(err)).replaceAll(join(staging, stored), name)}`,
        );
      }
      saved.push({ sourceName: name, path: join(final, stored), bytes: file.size });
    }
    await rename(staging, final);
    return saved;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}
