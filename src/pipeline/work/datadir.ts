// The data dir as both durable runners (job-runner.ts, generation-runner.ts) and the upload
// handler use it: where each kind of file lives, how a file gets there whole (written under a
// ".tmp-" name, fsynced, renamed into place), its sha256, and the clean-up of temporary files a
// crash left behind.

import { randomBytes } from "node:crypto";
import { open, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { sha256File } from "../bundle.ts";

/** Files and folders whose name starts with this are incomplete; start-up removes them. */
export const TMP_PREFIX = ".tmp-";

/** Uploaded inputs of a job (or the folder of all of them). */
export function uploadsDir(dataDir: string, jobId?: string): string {
  return jobId ? join(dataDir, "uploads", jobId) : join(dataDir, "uploads");
}

/** Outputs of an encode/decode/reconstruct job (or the folder of all of them). */
export function outputsDir(dataDir: string, jobId?: string): string {
  return jobId ? join(dataDir, "outputs", jobId) : join(dataDir, "outputs");
}

/** Outputs of a generation (or the folder of all of them). */
export function generationsDir(dataDir: string, id?: string): string {
  return id ? join(dataDir, "generations", id) : join(dataDir, "generations");
}

export { sha256File };

/** A fresh temporary path in dir for a file that will be named `<base>.<ext>`. */
export function tempPath(dir: string, base: string, ext: string): string {
  return join(dir, `${TMP_PREFIX}${base}-${randomBytes(4).toString("hex")}.${ext}`);
}

/** fsyncs a finished temporary file and renames it to its final path. */
export async function commitFile(tmp: string, path: string): Promise<void> {
  const handle = await open(tmp, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/** Writes bytes under a temporary name in dir, fsyncs, and renames to path. */
export async function writeAtomic(
  path: string,
  dir: string,
  base: string,
  ext: string,
  bytes: Uint8Array,
): Promise<void> {
  await produceAtomic(path, dir, base, ext, async (tmp) => {
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
  });
}

/** Lets `produce` write a temporary file in dir, then fsyncs and renames it to path. */
export async function produceAtomic<T>(
  path: string,
  dir: string,
  base: string,
  ext: string,
  produce: (tmp: string) => Promise<T>,
): Promise<T> {
  const tmp = tempPath(dir, base, ext);
  try {
    const result = await produce(tmp);
    await commitFile(tmp, path);
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Removes every ".tmp-*" file or folder under dir (recursively); returns how many. */
export async function removeTempFiles(dir: string): Promise<number> {
  let removed = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.name.startsWith(TMP_PREFIX)) {
      await rm(path, { recursive: true, force: true });
      removed++;
    } else if (entry.isDirectory()) {
      removed += await removeTempFiles(path);
    }
  }
  return removed;
}
