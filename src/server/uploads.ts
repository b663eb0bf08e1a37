// Multipart uploads, streamed to disk with busboy: each file goes straight into
// uploads/.tmp-<job>/ as it arrives (never whole in memory), with the file count and the body size
// capped while streaming. Then the text fields are validated, each file is checked (empty, probe),
// and the folder is renamed to uploads/<job>/. On any error the folder is removed, so no partial
// upload is left behind.

import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import busboy from "busboy";
import type { Context } from "hono";
import { TMP_PREFIX, uploadsDir } from "../pipeline/work/datadir.ts";
import { ApiError } from "./api-error.ts";
import { bodyStream, drainStream } from "./drain.ts";

export interface SavedUpload {
  sourceName: string;
  path: string;
  bytes: number;
  /** The form field it came in. */
  field: string;
}

/** File fields accepted: "files" (repeatable) and "file". */
export const FILE_FIELDS = ["files", "file"];

export interface UploadLimits {
  maxFiles: number;
  maxBytes: number;
}

export interface ReceiveOptions<T> extends UploadLimits {
  dataDir: string;
  jobId: string;
  /** Validates the text fields (throws ApiError); runs after the body is read. */
  fields: (fields: Record<string, string>) => T;
  /** Checks one stored file against the options (e.g. a probe); its errors name the file. */
  check: (path: string, name: string, options: T, field: string) => Promise<unknown>;
  /** The file fields accepted (default FILE_FIELDS); with others, errors name the file by its
   * field (`image "a.png": ...`) rather than `files[i]`. */
  fileFields?: readonly string[];
  /** No file is fine (default: at least one is required). */
  filesOptional?: boolean;
}

/** The client's file name without any path, for display; never used as a path. */
export function sourceName(name: string | undefined, index: number): string {
  return basename(String(name ?? "").replaceAll("\\", "/")).slice(0, 200) || `file${index}`;
}

interface Received {
  fields: Record<string, string>;
  /** Fields given more than once. */
  repeated: Set<string>;
  files: { name: string; path: string; bytes: number; field: string }[];
}

function checkContentType(c: Context): string {
  const type = c.req.header("content-type") ?? "";
  if (!/^multipart\/form-data\s*;/i.test(type) || !/boundary=/i.test(type)) {
    throw new ApiError(
      "unsupported_media_type",
      `expected a multipart/form-data body with a boundary, got ${type ? `"${type}"` : "no content-type"}`,
      415,
    );
  }
  return type;
}

const tooLarge = (max: number) =>
  new ApiError(
    "payload_too_large",
    `the request body is larger than ${max} bytes (DIFFUSABLE_MAX_UPLOAD_BYTES)`,
    413,
  );

/** Streams the multipart body into dir; fields are kept, files written as <index><ext>. */
function receive(
  c: Context,
  type: string,
  dir: string,
  limits: UploadLimits & { fileFields?: readonly string[] },
): Promise<Received> {
  const fileFields = limits.fileFields ?? FILE_FIELDS;
  const length = Number(c.req.header("content-length"));
  if (Number.isFinite(length) && length > limits.maxBytes) throw tooLarge(limits.maxBytes);
  const source = bodyStream(c);
  if (!source) throw new ApiError("malformed_multipart", "the request has no body", 400);
  return new Promise((resolve, reject) => {
    const received: Received = { fields: {}, repeated: new Set(), files: [] };
    const writes: Promise<unknown>[] = [];
    const streams: Readable[] = [];
    let failure: Error | null = null;
    let total = 0;
    const bb = busboy({
      headers: { "content-type": type },
      limits: {
        files: limits.maxFiles,
        fields: 100,
        fieldSize: 64 * 1024,
        parts: limits.maxFiles + 100,
      },
    });
    const fail = (err: Error) => {
      if (failure) return;
      failure = err;
      source.unpipe(bb);
      for (const s of streams) s.destroy(err);
      // Read and discard the rest of the body (bounded, drain.ts) before answering, so that the
      // client, still sending, receives the answer.
      const drained = drainStream(source, total);
      Promise.allSettled(writes).then(async () => {
        (err as { bodyDrained?: boolean }).bodyDrained = await drained;
        reject(err);
      });
    };
    source.on("data", (chunk: Buffer) => {
      if (failure) return;
      total += chunk.length;
      if (total > limits.maxBytes) fail(tooLarge(limits.maxBytes));
    });
    source.on("error", (err: Error & { status?: number }) =>
      fail(err.status === 413 ? tooLarge(limits.maxBytes) : err),
    );
    bb.on("file", (field, stream, info) => {
      streams.push(stream);
      if (failure) return void stream.resume();
      if (!fileFields.includes(field)) {
        // fail() destroys this stream with the error: it has no pipeline to take it.
        stream.on("error", () => {});
        stream.resume();
        const use = fileFields.map((f) => `"${f}"`).join(" or ");
        return fail(
          new ApiError("invalid_field", `${field}: unexpected file field (use ${use})`, 400),
        );
      }
      const index = received.files.length;
      const name = sourceName(info.filename, index);
      const ext = extname(name).toLowerCase();
      const path = join(dir, `${index}${/^\.[a-z0-9]{1,8}$/.test(ext) ? ext : ""}`);
      const entry = { name, path, bytes: 0, field };
      received.files.push(entry);
      const count = new Transform({
        transform(chunk: Buffer, _enc, done) {
          entry.bytes += chunk.length;
          done(null, chunk);
        },
      });
      writes.push(
        pipeline(stream, count, createWriteStream(path)).catch((err: Error) =>
          fail(failure ?? err),
        ),
      );
    });
    bb.on("field", (field, value, info) => {
      if (fileFields.includes(field)) {
        return fail(
          new ApiError("invalid_field", `${field}: expected a file, got a text field`, 400),
        );
      }
      if (info.valueTruncated) {
        return fail(new ApiError("invalid_field", `${field}: the value is too long`, 400));
      }
      // A field given twice is refused once the body is read (receiveUploads), never overwritten.
      if (Object.hasOwn(received.fields, field)) received.repeated.add(field);
      received.fields[field] = value;
    });
    bb.on("filesLimit", () =>
      fail(
        new ApiError(
          "too_many_files",
          `files: at most ${limits.maxFiles} files per request (got more)`,
          400,
        ),
      ),
    );
    bb.on("partsLimit", () =>
      fail(new ApiError("too_many_parts", "the form has too many parts", 400)),
    );
    bb.on("fieldsLimit", () =>
      fail(new ApiError("too_many_parts", "the form has too many fields", 400)),
    );
    bb.on("error", (err: Error) =>
      fail(
        new ApiError(
          "malformed_multipart",
          `the multipart body cannot be parsed: ${err.message}`,
          400,
        ),
      ),
    );
    bb.on("close", () => {
      if (failure) return;
      Promise.all(writes).then(
        () => (failure ? undefined : resolve(received)),
        (err: Error) => fail(err),
      );
    });
    source.pipe(bb);
  });
}

/**
 * Receives a multipart upload for this job: streams files to a staging folder, validates the
 * fields, checks every file, and moves the folder into place. Returns the options and the files.
 */
export async function receiveUploads<T>(
  c: Context,
  options: ReceiveOptions<T>,
): Promise<{ options: T; uploads: SavedUpload[] }> {
  const type = checkContentType(c);
  const staging = join(uploadsDir(options.dataDir), `${TMP_PREFIX}${options.jobId}`);
  const final = uploadsDir(options.dataDir, options.jobId);
  await mkdir(staging, { recursive: true });
  let bodyRead = false;
  try {
    const received = await receive(c, type, staging, options);
    bodyRead = true;
    const [repeated] = received.repeated;
    if (repeated !== undefined) {
      throw new ApiError("invalid_field", `${repeated} is given more than once; give it once`, 400);
    }
    const parsed = options.fields(received.fields);
    if (received.files.length === 0 && !options.filesOptional) {
      throw new ApiError("missing_file", "files: at least one file is required", 400);
    }
    for (const [index, file] of received.files.entries()) {
      const label = FILE_FIELDS.includes(file.field)
        ? `files[${index}] "${file.name}"`
        : `${file.field} "${file.name}"`;
      if (file.bytes === 0) throw new ApiError("empty_file", `${label}: the file is empty`, 400);
      try {
        await options.check(file.path, file.name, parsed, file.field);
      } catch (err) {
        const e = err as { status?: number; code?: string; message?: string };
        const status = e.status && e.status >= 400 && e.status < 500 ? e.status : 422;
        throw new ApiError(
          e.code ?? "invalid_file",
          `${label}: ${(e.message ?? String(err)).replaceAll(file.path, file.name)}`,
          status as 400,
        );
      }
    }
    await rename(staging, final);
    return {
      options: parsed,
      uploads: received.files.map((f) => ({
        sourceName: f.name,
        path: join(final, basename(f.path)),
        bytes: f.bytes,
        field: f.field,
      })),
    };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    // The whole body was read: the connection can be kept (api-error.ts onError).
    if (bodyRead && err instanceof Error) (err as { bodyDrained?: boolean }).bodyDrained = true;
    throw err;
  }
}
