// Pictures an autoencoder evaluation leaves in a run's folder, which the admin page shows: the
// first latent channels of one fixed val clip (latent-channels.png, a row per latent frame). Only
// these exact names are read, and only a file that starts with the PNG signature counts.

import { closeSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";

export const LATENT_CHANNELS_FILE = "latent-channels.png";

/** Larger files are not served (the picture is a few hundred kB at most). */
export const MAX_PICTURE_BYTES = 16 * 1024 * 1024;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The path of the run folder's latent-channels.png when it is there and a PNG; else null. */
export function latentChannelsFile(folder: string | null | undefined): string | null {
  if (!folder) return null;
  const path = join(folder, LATENT_CHANNELS_FILE);
  let fd: number | null = null;
  try {
    const st = statSync(path);
    if (!st.isFile() || st.size < PNG_SIGNATURE.length || st.size > MAX_PICTURE_BYTES) return null;
    fd = openSync(path, "r");
    const head = Buffer.alloc(PNG_SIGNATURE.length);
    readSync(fd, head, 0, head.length, 0);
    return head.equals(PNG_SIGNATURE) ? path : null;
  } catch {
    return null;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
