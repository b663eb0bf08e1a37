// Video I/O: the one module that runs ffmpeg and ffprobe (Debian's binaries, found on PATH).
// Every process starts in the process host (process-host.ts), never on the event loop (a start
// blocks the thread that asks for it), and runs at a lower CPU priority than the HTTP thread.
// Decoding runs through fluent-ffmpeg there; ffprobe runs through execFile because fluent-ffmpeg's
// ffprobe() offers neither a timeout nor a way to kill a hung probe. A file's probe is kept
// (keyed by its inode, size and mtime), so the upload check, the job and the decoder probe once.
// Frames are rgb24, row-major, size x size x 3 bytes (or width x height x 3 with DecodeOptions.frame),
// one Uint8Array per frame.

import { once } from "node:events";
import { open, rm, stat } from "node:fs/promises";
import { PipelineError } from "../pipeline-error.ts";
import { OUTPUT_FORMATS, type VideoFormat } from "./output-formats.ts";
import { type HostedProcess, hostExec, hostSpawn } from "./process-host.ts";

export type VideoErrorCode =
  | "not_found"
  | "empty_file"
  | "not_a_video"
  | "no_video_stream"
  | "truncated"
  | "bad_dimensions"
  | "timeout"
  | "aborted"
  | "ffmpeg_failed";

/** A video that ffmpeg cannot or may not read, or an ffmpeg run that failed. */
export class VideoError extends PipelineError {
  override name = "VideoError";
  declare readonly code: VideoErrorCode;
  constructor(code: VideoErrorCode, message: string, options?: { cause?: unknown }) {
    const status = code === "ffmpeg_failed" || code === "aborted" ? 500 : 422;
    super(code, message, code === "not_found" ? 404 : status, options);
  }
}

/** Side lengths (as the header declares them) that we refuse before decoding anything. */
export const MIN_SIDE = 8;
export const MAX_SIDE = 8192;

export interface VideoInfo {
  width: number;
  height: number;
  fps: number;
  durationS: number | null;
  /** Frame count from the container header, when it has one (mp4 does, mkv does not). */
  frames: number | null;
  codec: string;
  pixFmt: string | null;
  hasAudio: boolean;
  /** A still image (png, jpeg, webp, bmp...: ffmpeg's image2 or *_pipe demuxers), not a video. */
  stillImage: boolean;
}

interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  pix_fmt?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  nb_frames?: string;
  duration?: string;
}

/**
 * ffmpeg's own words, without its internal pointers ("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55ef...] "),
 * which mean nothing to a client.
 */
function tail(stderr: string, lines = 6): string {
  const kept = stderr
    .split("\n")
    .map((l) => l.replace(/\[[^\]]* @ 0x[0-9a-f]+\]\s*/gi, "").trim())
    .filter((l) => l.length > 0)
    .slice(-lines);
  return kept.join("; ") || "(no output)";
}

async function startsWithFtyp(path: string): Promise<boolean> {
  const file = await open(path, "r");
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await file.read(head, 0, 8, 0);
    return bytesRead === 8 && head.toString("latin1", 4, 8) === "ftyp";
  } finally {
    await file.close();
  }
}

/** Maps ffmpeg/ffprobe stderr of a failed read onto a stable code. */
async function classify(path: string, stderr: string): Promise<VideoErrorCode> {
  if (/moov atom not found/i.test(stderr)) {
    // An MP4 that starts like one but has no index was cut short; anything else is not a video.
    return (await startsWithFtyp(path).catch(() => false)) ? "truncated" : "not_a_video";
  }
  if (/partial file|truncat|end of file|unexpected eof|Invalid NAL unit size/i.test(stderr)) {
    return "truncated";
  }
  if (/Invalid data found|could not find codec parameters|unknown format/i.test(stderr)) {
    return "not_a_video";
  }
  return "ffmpeg_failed";
}

function parseRate(rate: string | undefined): number {
  const [num, den] = (rate ?? "0/0").split("/").map(Number);
  return num && den ? num / den : 0;
}

/** Stats the file; its identity (device, inode, size, mtime) keys the probe cache. */
async function checkFile(path: string): Promise<string> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (err) {
    throw new VideoError("not_found", `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (st.size === 0) throw new VideoError("empty_file", `${path} is empty (0 bytes)`);
  return `${path}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

/** Probes by file identity, oldest first (a Map keeps insertion order). */
const probes = new Map<string, Promise<VideoInfo>>();
const PROBES_KEPT = 256;

/** Reads the header with ffprobe; rejects empty files, non-videos and absurd dimensions. The
 * answer for an unchanged file is kept: the upload check, the job and the decoder probe once. */
export async function probeVideo(
  path: string,
  opts: { timeoutMs?: number } = {},
): Promise<VideoInfo> {
  const key = await checkFile(path);
  let probe = probes.get(key);
  if (probe === undefined) {
    // Kept while it runs too, so that concurrent probes of one file start one ffprobe.
    probe = probeFile(path, opts.timeoutMs ?? 30_000);
    probes.set(key, probe);
    if (probes.size > PROBES_KEPT) probes.delete(probes.keys().next().value as string);
    probe.catch(() => probes.delete(key)); // a failure is not kept: the next call tries again
  }
  return { ...(await probe) };
}

async function probeFile(path: string, timeoutMs: number): Promise<VideoInfo> {
  const args = ["-v", "error", "-of", "json", "-show_streams", "-show_format", path];
  const { stdout, stderr, error } = await hostExec("ffprobe", args, {
    timeoutMs,
    maxBuffer: 16 << 20,
  });
  if (error) {
    if (error.killed) {
      throw new VideoError("timeout", `ffprobe took longer than ${timeoutMs} ms`);
    }
    if (error.code === "ENOENT") {
      throw new VideoError("ffmpeg_failed", `cannot run ffprobe: ${error.message}`);
    }
    const code = await classify(path, stderr);
    throw new VideoError(code, `ffprobe cannot read the file: ${tail(stderr)}`, {
      cause: new Error(error.message),
    });
  }
  let parsed: { streams?: ProbeStream[]; format?: { duration?: string; format_name?: string } };
  try {
    parsed = JSON.parse(stdout);
  } catch (err) {
    throw new VideoError("ffmpeg_failed", `ffprobe printed no JSON: ${tail(stderr)}`, {
      cause: err,
    });
  }
  const streams = parsed.streams ?? [];
  const video = streams.find((s) => s.codec_type === "video");
  if (video === undefined) {
    const kinds = streams.map((s) => s.codec_type ?? "unknown");
    if (kinds.length === 0) {
      throw new VideoError("not_a_video", `no streams found in the file: ${tail(stderr)}`);
    }
    throw new VideoError(
      "no_video_stream",
      `the file has no video stream (it has ${kinds.join(", ")})`,
    );
  }
  const width = video.width ?? 0;
  const height = video.height ?? 0;
  if (!(width >= MIN_SIDE && height >= MIN_SIDE && width <= MAX_SIDE && height <= MAX_SIDE)) {
    throw new VideoError(
      "bad_dimensions",
      `the video header declares ${width}x${height} frames; each side must be ${MIN_SIDE}..${MAX_SIDE} pixels`,
    );
  }
  const duration = Number(video.duration ?? parsed.format?.duration);
  const frames = Number(video.nb_frames);
  return {
    width,
    height,
    fps: parseRate(video.avg_frame_rate) || parseRate(video.r_frame_rate),
    durationS: Number.isFinite(duration) ? duration : null,
    frames: Number.isInteger(frames) && frames > 0 ? frames : null,
    codec: video.codec_name ?? "unknown",
    pixFmt: video.pix_fmt ?? null,
    hasAudio: streams.some((s) => s.codec_type === "audio"),
    stillImage: /(^|,)(image2|\w+_pipe)(,|$)/.test(parsed.format?.format_name ?? ""),
  };
}

/** The video packets (frames, for video codecs) of the file's first video stream, by demuxing it
 *  without decoding: for a file whose header gives neither a duration nor a frame count. */
export async function countVideoFrames(path: string, timeoutMs = 30_000): Promise<number> {
  const args = ["-v", "error", "-select_streams", "v:0", "-count_packets"];
  args.push("-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path);
  const { stdout, error } = await hostExec("ffprobe", args, { timeoutMs });
  if (error) throw new VideoError("ffmpeg_failed", "ffprobe cannot count the video's frames");
  const n = Number.parseInt(stdout.trim(), 10);
  return Number.isFinite(n) ? n : 0;
}

export interface DecodeOptions {
  /** Output frame rate; omitted: the source's own frames. */
  fps?: number;
  /** Side of the square output: the shorter side is resized to it, then a centre crop. */
  size: number;
  /** Instead of the square: resize the whole frame to width x height (no crop). */
  frame?: { width: number; height: number };
  maxFrames?: number;
  /** Skip this many output frames (counted at the output fps). */
  startFrame?: number;
  /** Wall-clock limit for the whole decode, including time the consumer spends between frames. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called with ffmpeg's pid once it runs (tests use it to check that it was killed). */
  onSpawn?: (pid: number) => void;
}

/** The filter chain, the same as the training data's (diffusable.data.ingest); with `frame`, the
 * whole picture resized to width x height instead of the square crop. */
export function frameFilter(
  size: number,
  fps?: number,
  startFrame = 0,
  frame?: { width: number; height: number },
): string {
  return [
    ...(fps ? [`fps=${fps}`] : []),
    ...(startFrame > 0 ? [`trim=start_frame=${startFrame}`, "setpts=PTS-STARTPTS"] : []),
    "scale=iw*sar:ih",
    "setsar=1",
    ...(frame
      ? [`scale=${frame.width}:${frame.height}`]
      : [`scale=${size}:${size}:force_original_aspect_ratio=increase`, `crop=${size}:${size}`]),
  ].join(",");
}

/**
 * Decoded frames, one rgb24 Uint8Array of size*size*3 bytes each. ffmpeg's stdout arrives in
 * chunks that do not align with frames, so bytes are gathered into whole frames here. ffmpeg is
 * killed on timeout, abort, error, or when the consumer stops early (return/break).
 */
export async function* decodeFrames(
  path: string,
  opts: DecodeOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  if (!(Number.isInteger(opts.size) && opts.size >= 1 && opts.size <= MAX_SIDE)) {
    throw new VideoError("bad_dimensions", `decode size must be 1..${MAX_SIDE}, got ${opts.size}`);
  }
  if (opts.signal?.aborted) throw new VideoError("aborted", "aborted before decoding");
  const started = Date.now();
  await probeVideo(path, { timeoutMs: opts.timeoutMs });
  if (opts.signal?.aborted) throw new VideoError("aborted", "aborted before decoding");
  const f = opts.frame;
  if (f && !(f.width >= 1 && f.height >= 1 && f.width <= MAX_SIDE && f.height <= MAX_SIDE)) {
    throw new VideoError(
      "bad_dimensions",
      `decode size must be 1..${MAX_SIDE} a side, got ${f.width}x${f.height}`,
    );
  }
  const frameBytes = f ? f.width * f.height * 3 : opts.size * opts.size * 3;
  // The outcome is judged from the ffmpeg process itself (exit code, signal, stderr tail), not
  // from fluent-ffmpeg's events: with a piped output, fluent-ffmpeg reports "Output stream closed"
  // as an error when the process exit is seen more than 20 ms after stdout closed (a busy machine).
  let failure: VideoError | null = null;
  let spawnError: Error | null = null;
  let exitStatus: { code: number | null; signal: string | null } | null = null;
  const stderrTail: string[] = [];
  let partialLine = "";
  let markExited: () => void = () => {};
  const exited = new Promise<void>((resolve) => {
    markExited = resolve;
  });
  let markStderrClosed: () => void = () => {};
  const stderrClosed = new Promise<void>((resolve) => {
    markStderrClosed = resolve;
  });
  const proc: HostedProcess = hostSpawn({
    op: "ffmpeg",
    input: path,
    inputOptions: ["-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1"],
    videoFilters: frameFilter(opts.size, opts.fps, opts.startFrame ?? 0, f),
    outputOptions: [
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      ...(opts.maxFrames !== undefined ? ["-frames:v", String(opts.maxFrames)] : []),
    ],
  });
  const out = proc.stdout as NonNullable<HostedProcess["stdout"]>;
  proc.stderr.on("data", (text: string) => {
    const lines = (partialLine + text).split("\n");
    partialLine = lines.pop() ?? "";
    for (const line of lines) {
      stderrTail.push(line);
      if (stderrTail.length > 20) stderrTail.shift();
    }
  });
  proc.stderr.once("close", () => {
    if (partialLine) stderrTail.push(partialLine);
    partialLine = "";
    markStderrClosed();
  });
  proc.once("spawn", (pid: number) => opts.onSpawn?.(pid));
  proc.once("exit", (code: number | null, signal: string | null) => {
    exitStatus = { code, signal };
    markExited();
  });
  proc.once("error", (err: Error) => {
    // ffmpeg never started (not installed, bad arguments): no exit event will come.
    spawnError = err;
    markExited();
    markStderrClosed();
    out.destroy();
  });
  const kill = () => {
    if (exitStatus === null && spawnError === null) proc.kill("SIGKILL");
  };
  const fail = (err: VideoError) => {
    failure ??= err;
    kill();
    out.destroy();
  };
  const timeLeft = opts.timeoutMs - (Date.now() - started);
  const timer = setTimeout(
    () => fail(new VideoError("timeout", `decoding ${path} took longer than ${opts.timeoutMs} ms`)),
    Math.max(0, timeLeft),
  );
  const onAbort = () => fail(new VideoError("aborted", `decoding ${path} was aborted`));
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  let complete = false;
  try {
    try {
      for await (const chunk of out as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.length) {
          const n = Math.min(frameBytes - filled, chunk.length - offset);
          frame.set(chunk.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === frameBytes) {
            if (failure) throw failure;
            yield frame;
            frame = new Uint8Array(frameBytes);
            filled = 0;
          }
        }
      }
    } catch (err) {
      throw failure ?? err;
    }
    await exited;
    await stderrClosed;
    complete = true;
    if (failure) throw failure;
    if (spawnError) {
      throw new VideoError("ffmpeg_failed", `cannot run ffmpeg: ${(spawnError as Error).message}`);
    }
    const status = exitStatus as { code: number | null; signal: string | null } | null;
    if (status && (status.code !== 0 || status.signal !== null)) {
      const stderr = stderrTail.join("\n");
      const how = status.signal ? `was killed by ${status.signal}` : `exited with ${status.code}`;
      throw new VideoError(
        await classify(path, stderr),
        `ffmpeg cannot decode ${path} (${how}): ${tail(stderr)}`,
      );
    }
    // ffmpeg decodes what there is of a cut-off file and exits 0, but says so.
    const stderr = stderrTail.join("\n");
    if (/partial file/i.test(stderr)) {
      throw new VideoError("truncated", `${path} is cut short: ${tail(stderr, 3)}`);
    }
    if (filled !== 0) {
      throw new VideoError(
        "truncated",
        `ffmpeg ended in the middle of a frame (${filled} of ${frameBytes} bytes)`,
      );
    }
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    if (!complete) {
      // Stopped early (break, error, timeout, abort): kill ffmpeg and wait for it to be gone.
      kill();
      out.destroy();
      await exited;
    }
  }
}

export interface EncodeVideoOptions {
  width: number;
  height: number;
  fps: number;
  format: VideoFormat;
  outPath: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Writes rgb24 frames (width*height*3 bytes each) to outPath in one of the video formats of
 * output-formats.ts (mp4: H.264, yuv420p, faststart; webm: VP9; gif). Frames are written into
 * ffmpeg's stdin with backpressure. ffmpeg is spawned directly (not through fluent-ffmpeg) so that
 * every path ends it: on success its stdin is closed and its exit awaited; on any failure (a frame
 * source that throws, a bad frame, a timeout, an abort, ffmpeg dying) its stdin is destroyed, it
 * is killed with SIGKILL and its exit awaited, the frame source is closed (so a decoding ffmpeg
 * behind it is ended too) and the partial output is removed before this rejects.
 */
export async function encodeFrames(
  frames: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: EncodeVideoOptions,
): Promise<{ frames: number }> {
  const { width, height, fps } = opts;
  if (!(width >= 1 && height >= 1 && width <= MAX_SIDE && height <= MAX_SIDE)) {
    throw new VideoError("bad_dimensions", `cannot encode ${width}x${height} frames`);
  }
  if (opts.signal?.aborted) throw new VideoError("aborted", "encoding was aborted");
  const frameBytes = width * height * 3;
  const { filter, options } = OUTPUT_FORMATS[opts.format].ffmpeg;
  const args = [
    "-hide_banner",
    "-loglevel",
    "error",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "-s",
    `${width}x${height}`,
    "-r",
    String(fps),
    "-i",
    "pipe:0",
    "-an",
    "-vf",
    filter,
    ...options,
    "-y",
    opts.outPath,
  ];
  const proc = hostSpawn({ op: "spawn", command: "ffmpeg", args, stdin: true, stdout: false });
  let count = 0;
  // The first failure wins: a bad frame or an error of the frame source (e.g. the model) is
  // reported as itself rather than as the broken pipe ffmpeg's death causes.
  let failure: Error | null = null;
  let status: { code: number | null; signal: string | null } | null = null;
  let stderr = "";
  proc.stderr.on("data", (text: string) => {
    stderr = (stderr + text).slice(-8192);
  });
  proc.stdin?.on("error", () => {}); // EPIPE when ffmpeg exits early: judged by its exit below
  const exited = new Promise<void>((resolve) => {
    proc.once("error", (err: Error) => {
      failure ??= new VideoError("ffmpeg_failed", `cannot run ffmpeg: ${err.message}`);
      status ??= { code: null, signal: null };
      resolve();
    });
    proc.once("close", (code: number | null, signal: string | null) => {
      status = { code, signal };
      resolve();
    });
  });
  const kill = () => {
    proc.stdin?.destroy();
    if (status === null) proc.kill("SIGKILL");
  };
  const fail = (err: Error) => {
    failure ??= err;
    kill();
  };
  const timer = setTimeout(
    () => fail(new VideoError("timeout", `encoding took longer than ${opts.timeoutMs} ms`)),
    opts.timeoutMs ?? 600_000,
  );
  const onAbort = () => fail(new VideoError("aborted", "encoding was aborted"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    try {
      // for-await closes the frame source (its finally runs) on break or throw.
      for await (const f of frames) {
        if (failure || status) break;
        if (f.length !== frameBytes) {
          throw new VideoError(
            "bad_dimensions",
            `frame ${count} has ${f.length} bytes, expected ${width}x${height}x3 = ${frameBytes}`,
          );
        }
        count++;
        const stdin = proc.stdin;
        if (stdin && !stdin.write(f)) {
          await Promise.race([once(stdin, "drain").catch(() => {}), exited]);
        }
      }
    } catch (err) {
      fail(err as Error);
    }
    if (failure === null) proc.stdin?.end();
    await exited;
    if (failure) throw failure;
    const st = status as { code: number | null; signal: string | null } | null;
    if (st && (st.code !== 0 || st.signal !== null)) {
      const how = st.signal ? `was killed by ${st.signal}` : `exited with ${st.code}`;
      throw new VideoError(
        "ffmpeg_failed",
        `ffmpeg cannot write ${opts.format} (${how}): ${tail(stderr)}`,
      );
    }
    if (count === 0) throw new VideoError("ffmpeg_failed", "no frames to encode");
    return { frames: count };
  } catch (err) {
    kill();
    await exited;
    await rm(opts.outPath, { force: true });
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}
