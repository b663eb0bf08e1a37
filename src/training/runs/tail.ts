// Reading a growing events.jsonl by byte offset: the complete lines written since `offset`, and
// whether a partial line (no newline yet) follows them. Lines are cut on bytes, so a multi-byte
// character split across two writes is never decoded half-way. A partial last line is not an
// error while the run is live: the next read starts at its first byte again.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export interface TailLine {
  /** 1-based line number in the file (blank lines count). */
  line: number;
  text: string;
}

export interface TailChunk {
  lines: TailLine[];
  /** Byte offset just after the last complete line read (where the next read starts). */
  offset: number;
  /** Line count up to offset. */
  lineCount: number;
  /** The bytes after offset that do not end with a newline yet (empty when none). */
  partial: string;
  /** File size when read. */
  size: number;
}

const NEWLINE = 0x0a;

/**
 * The complete lines of `file` after byte `offset` (which is just after line `lineCount`).
 * At most `maxBytes` are read at once; call again while `offset < size` and lines come back.
 */
export function readNewLines(
  file: string,
  offset: number,
  lineCount: number,
  maxBytes = 8 * 1024 * 1024,
): TailChunk {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < offset) {
      throw new Error(`${file} shrank to ${size} bytes, below the ${offset} already read`);
    }
    const length = Math.min(size - offset, maxBytes);
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    const data = buf.subarray(0, got);
    const lines: TailLine[] = [];
    let start = 0;
    let line = lineCount;
    for (let i = data.indexOf(NEWLINE); i !== -1; i = data.indexOf(NEWLINE, start)) {
      line += 1;
      lines.push({ line, text: data.subarray(start, i).toString("utf8").replace(/\r$/, "") });
      start = i + 1;
    }
    // A single line longer than maxBytes: read it whole rather than never advancing.
    if (lines.length === 0 && got === maxBytes && offset + got < size) {
      return readNewLines(file, offset, lineCount, maxBytes * 2);
    }
    return {
      lines,
      offset: offset + start,
      lineCount: line,
      partial: data.subarray(start).toString("utf8"),
      size,
    };
  } finally {
    closeSync(fd);
  }
}
