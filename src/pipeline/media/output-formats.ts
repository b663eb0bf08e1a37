// The one table of output formats: file extension, MIME type and, for videos, the ffmpeg filter
// and output arguments (video.ts's writer). The routes, the request schemas and the OpenAPI
// document read their lists and types from here; a new format is one row below.

const EVEN = "pad=ceil(iw/2)*2:ceil(ih/2)*2"; // yuv420p needs even sides

export interface FfmpegOutput {
  /** The -vf filter chain. */
  filter: string;
  /** Output arguments after the filter (codec, pixel format, muxer). */
  options: string[];
}

export interface OutputFormatInfo {
  ext: string;
  mime: string;
  /** How ffmpeg writes it; null for a format that is not a video (latents as .npy). */
  ffmpeg: FfmpegOutput | null;
  /** Whether a browser's <video> element plays it (the admin page shows only those). */
  browser: boolean;
}

export const OUTPUT_FORMATS = {
  mp4: {
    ext: "mp4",
    mime: "video/mp4",
    browser: true,
    ffmpeg: {
      filter: EVEN,
      options: [
        ...["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"],
        ...["-movflags", "+faststart", "-f", "mp4"],
      ],
    },
  },
  webm: {
    ext: "webm",
    mime: "video/webm",
    browser: true,
    ffmpeg: {
      filter: EVEN,
      options: [
        ...["-c:v", "libvpx-vp9", "-crf", "30", "-b:v", "0", "-pix_fmt", "yuv420p"],
        ...["-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"],
        // Without bitexact the matroska muxer writes a random SegmentUID: the same frames
        // would give different bytes (generation promises identical files for a seed).
        ...["-fflags", "+bitexact", "-f", "webm"],
      ],
    },
  },
  gif: {
    ext: "gif",
    mime: "image/gif",
    browser: false,
    // One pass with a palette computed from the whole clip, so colours are not dithered to
    // the default 256-colour palette.
    ffmpeg: {
      filter: "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer",
      options: ["-f", "gif"],
    },
  },
  npy: { ext: "npy", mime: "application/octet-stream", ffmpeg: null, browser: false },
} as const satisfies Record<string, OutputFormatInfo>;

export type OutputFormat = keyof typeof OUTPUT_FORMATS;

/** The formats ffmpeg writes (decodings, reconstructions, generated videos). */
export type VideoFormat = {
  [K in OutputFormat]: (typeof OUTPUT_FORMATS)[K]["ffmpeg"] extends null ? never : K;
}[OutputFormat];

/** Every output format, in table order. */
export const ALL_OUTPUT_FORMATS = Object.keys(OUTPUT_FORMATS) as [OutputFormat, ...OutputFormat[]];

/** The video formats, in table order. */
export const VIDEO_FORMATS = ALL_OUTPUT_FORMATS.filter(
  (f) => OUTPUT_FORMATS[f].ffmpeg !== null,
) as [VideoFormat, ...VideoFormat[]];

/** The video formats a browser plays. */
export const BROWSER_VIDEO_FORMATS: readonly string[] = ALL_OUTPUT_FORMATS.filter(
  (f) => OUTPUT_FORMATS[f].browser,
);

/** The MIME type of a file written in this format (or of an extension; octet-stream if unknown). */
export function mimeOf(format: string): string {
  return (
    (OUTPUT_FORMATS as Record<string, OutputFormatInfo>)[format]?.mime ?? "application/octet-stream"
  );
}
