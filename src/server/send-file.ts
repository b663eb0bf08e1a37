// The one way a route sends a stored output file: the MIME type of its format
// (pipeline/media/output-formats.ts), its sha256 as a strong ETag (If-None-Match -> 304), one
// byte range (Range -> 206, or 416 when it is outside the file; media elements ask for them), and
// optionally a download name. A file gone from the data dir is a 500 "output_missing".

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import type { Context } from "hono";
import { mimeOf } from "../pipeline/media/output-formats.ts";
import { ApiError } from "./api-error.ts";

export interface SendFileOptions {
  /** An output format or file extension (its MIME type is sent); default the path's extension. */
  format?: string;
  /** sha256 (hex) of the file: the ETag. */
  sha256?: string | null;
  /** Sent as Content-Disposition: attachment; filename="...". */
  filename?: string;
  /** The message of the 500 when the file is gone. */
  missing?: string;
}

export async function sendFile(
  c: Context,
  path: string,
  opts: SendFileOptions = {},
): Promise<Response> {
  const size = await stat(path).then(
    (s) => s.size,
    () => {
      throw new ApiError(
        "output_missing",
        opts.missing ?? "the output file is gone from the data dir",
        500,
      );
    },
  );
  const format = opts.format ?? path.split(".").pop() ?? "";
  const headers: Record<string, string> = {
    "content-type": mimeOf(format),
    "accept-ranges": "bytes",
  };
  if (opts.filename) headers["content-disposition"] = `attachment; filename="${opts.filename}"`;
  if (opts.sha256) {
    headers.etag = `"${opts.sha256}"`;
    const match = c.req.header("if-none-match");
    if (match?.split(",").some((t) => t.trim() === headers.etag || t.trim() === "*")) {
      return new Response(null, { status: 304, headers: { etag: headers.etag } });
    }
  }
  const range = /^bytes=(\d*)-(\d*)$/.exec(c.req.header("range") ?? "");
  if (range && (range[1] || range[2])) {
    let start = range[1] ? Number(range[1]) : size - Number(range[2]);
    let end = range[1] && range[2] ? Number(range[2]) : size - 1;
    start = Math.max(0, start);
    end = Math.min(end, size - 1);
    if (start > end || start >= size) {
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
    }
    return new Response(Readable.toWeb(createReadStream(path, { start, end })) as ReadableStream, {
      status: 206,
      headers: {
        ...headers,
        "content-range": `bytes ${start}-${end}/${size}`,
        "content-length": String(end - start + 1),
      },
    });
  }
  return new Response(Readable.toWeb(createReadStream(path)) as ReadableStream, {
    headers: { ...headers, "content-length": String(size) },
  });
}
