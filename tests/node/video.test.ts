import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  decodeFrames,
  encodeFrames,
  probeVideo,
  VideoError,
  type VideoErrorCode,
} from "../../src/pipeline/media/video.ts";
import { alive, ffmpegMake, testVideo } from "./media.ts";

let dir = "";
const p = (name: string) => join(dir, name);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const f of it) out.push(f);
  return out;
}

const mean = (a: Uint8Array, channel?: number) => {
  let s = 0;
  let n = 0;
  for (let i = channel ?? 0; i < a.length; i += channel === undefined ? 1 : 3) {
    s += a[i] as number;
    n++;
  }
  return s / n;
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), "video-test-"));
  // Frame i is uniformly grey at level 8i, losslessly coded: any frame boundary that is off by a
  // byte shows up as a frame that is not uniform or has the wrong level.
  ffmpegMake([
    ...["-f", "lavfi", "-i", "color=c=black:s=64x48:r=8:d=3,format=gray,geq=lum='N*8'"],
    ...["-c:v", "ffv1", p("levels.mkv")],
  ]);
  // testsrc2 with audio, 10 fps, 2 s
  ffmpegMake([
    ...["-f", "lavfi", "-i", "testsrc2=s=64x48:r=10:d=2", "-f", "lavfi", "-i", "sine=d=2"],
    ...[
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
      "-shortest",
    ],
    p("av.mp4"),
  ]);
  // Three vertical bands red | green | blue, 32 px each: a centre crop must be green.
  ffmpegMake([
    ...[
      "-f",
      "lavfi",
      "-i",
      "color=c=red:s=32x32:r=8:d=1",
      "-f",
      "lavfi",
      "-i",
      "color=c=lime:s=32x32:r=8:d=1",
    ],
    ...["-f", "lavfi", "-i", "color=c=blue:s=32x32:r=8:d=1", "-filter_complex", "hstack=inputs=3"],
    ...["-c:v", "ffv1", p("bands.mkv")],
  ]);
  testVideo(p("long.mp4"), { size: "160x128", fps: 8, seconds: 8 });
  // Bad inputs
  writeFileSync(p("empty.mp4"), "");
  writeFileSync(p("text.mp4"), "this is not a video\n".repeat(20));
  // moov at the end (no faststart): cutting the file loses the index.
  testVideo(p("whole.mp4"), { size: "64x48", seconds: 4 });
  const whole = readFileSync(p("whole.mp4"));
  writeFileSync(p("truncated.mp4"), whole.subarray(0, Math.floor(whole.length / 2)));
  // With faststart the index survives the cut, so only decoding finds the missing data.
  ffmpegMake([
    ...["-f", "lavfi", "-i", "testsrc2=s=64x48:r=8:d=4", "-c:v", "libx264", "-preset", "ultrafast"],
    ...["-movflags", "+faststart", p("faststart.mp4")],
  ]);
  const fs = readFileSync(p("faststart.mp4"));
  writeFileSync(p("truncated-faststart.mp4"), fs.subarray(0, Math.floor(fs.length * 0.6)));
  ffmpegMake(["-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", p("audio.m4a")]);
  ffmpegMake([
    ...["-f", "lavfi", "-i", "color=c=gray:s=8x8:r=8:d=0.5,scale=1:1"],
    ...["-pix_fmt", "gray", "-c:v", "png", p("1x1.mkv")],
  ]);
  // A single grey 10000x10000 PNG frame compresses to ~100 kB.
  ffmpegMake([
    ...["-f", "lavfi", "-i", "color=c=gray:s=10000x10000:r=8:d=0.125"],
    ...["-frames:v", "1", "-pix_fmt", "gray", "-c:v", "png", p("10000x10000.mkv")],
  ]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("probeVideo", () => {
  test("reads size, fps, duration, frames, codec and audio", async () => {
    const info = await probeVideo(p("av.mp4"));
    assert.equal(info.width, 64);
    assert.equal(info.height, 48);
    assert.equal(info.fps, 10);
    assert.equal(info.frames, 20);
    assert.equal(info.codec, "h264");
    assert.equal(info.hasAudio, true);
    assert.ok(info.durationS !== null && Math.abs(info.durationS - 2) < 0.1);
    assert.equal((await probeVideo(p("levels.mkv"))).hasAudio, false);
  });
});

describe("decodeFrames", () => {
  test("frames are whole and in order although stdout chunks do not align with them", async () => {
    // 30x30x3 = 2700 bytes per frame: not a divisor of any pipe chunk size.
    const frames = await collect(decodeFrames(p("levels.mkv"), { size: 30, timeoutMs: 30_000 }));
    assert.equal(frames.length, 24);
    frames.forEach((f, i) => {
      assert.equal(f.length, 2700);
      const lo = Math.min(...f);
      const hi = Math.max(...f);
      assert.ok(hi - lo <= 2, `frame ${i} is not uniform (${lo}..${hi})`);
      assert.ok(
        Math.abs(mean(f) - 8 * i) <= 2,
        `frame ${i} has level ${mean(f)}, expected ${8 * i}`,
      );
    });
  });

  test("startFrame and maxFrames select a window", async () => {
    const frames = await collect(
      decodeFrames(p("levels.mkv"), { size: 16, startFrame: 5, maxFrames: 4, timeoutMs: 30_000 }),
    );
    assert.deepEqual(
      frames.map((f) => Math.round(mean(f) / 8)),
      [5, 6, 7, 8],
    );
  });

  test("resamples to the requested fps and size", async () => {
    const frames = await collect(
      decodeFrames(p("av.mp4"), { fps: 8, size: 32, timeoutMs: 30_000 }),
    );
    assert.equal(frames.length, 16);
    assert.ok(frames.every((f) => f.length === 32 * 32 * 3));
  });

  test("shorter side resized, then a centre crop", async () => {
    const [frame] = await collect(
      decodeFrames(p("bands.mkv"), { size: 16, maxFrames: 1, timeoutMs: 30_000 }),
    );
    assert.ok(frame);
    assert.ok(mean(frame, 1) > 200, `green ${mean(frame, 1)}`);
    assert.ok(
      mean(frame, 0) < 40 && mean(frame, 2) < 40,
      `red ${mean(frame, 0)} blue ${mean(frame, 2)}`,
    );
  });

  test("a timeout kills ffmpeg, even while the consumer is not reading", async () => {
    let pid = 0;
    // Long enough for the first frame to arrive on a loaded machine (at 400 ms, then at 1500 ms
    // under a load of 7-10 on 2 cores, it sometimes did not), so that the timeout fires while
    // the consumer sleeps.
    const timeoutMs = 4000;
    // A first decode of the file starts the process host and probes the file (both kept), so
    // the timed one below spends its budget on ffmpeg alone.
    await collect(decodeFrames(p("long.mp4"), { size: 16, maxFrames: 1, timeoutMs: 60_000 }));
    const frames = decodeFrames(p("long.mp4"), {
      size: 128,
      timeoutMs,
      onSpawn: (id) => {
        pid = id;
      },
    });
    const first = await frames.next();
    assert.equal(first.done, false);
    await sleep(timeoutMs + 600); // ffmpeg is blocked on a full pipe meanwhile
    await assert.rejects(frames.next(), (err: VideoError) => {
      assert.equal(err.code, "timeout");
      assert.match(err.message, /longer than 4000 ms/);
      return true;
    });
    assert.ok(pid > 0);
    assert.equal(alive(pid), false, "ffmpeg is still running");
  });

  test("stopping early and aborting kill ffmpeg", async () => {
    let pid = 0;
    for await (const _ of decodeFrames(p("long.mp4"), {
      size: 64,
      timeoutMs: 30_000,
      onSpawn: (id) => {
        pid = id;
      },
    })) {
      break;
    }
    assert.equal(alive(pid), false);

    const controller = new AbortController();
    const frames = decodeFrames(p("long.mp4"), {
      size: 64,
      timeoutMs: 30_000,
      signal: controller.signal,
      onSpawn: (id) => {
        pid = id;
      },
    });
    await frames.next();
    controller.abort();
    await assert.rejects(collect(frames), { code: "aborted" });
    assert.equal(alive(pid), false);
  });
});

describe("bad inputs get a VideoError with a stable code", () => {
  const cases: [string, VideoErrorCode, RegExp][] = [
    ["empty.mp4", "empty_file", /empty \(0 bytes\)/],
    ["text.mp4", "not_a_video", /Invalid data found|moov atom not found/],
    ["truncated.mp4", "truncated", /moov atom not found/],
    ["audio.m4a", "no_video_stream", /no video stream \(it has audio\)/],
    ["1x1.mkv", "bad_dimensions", /declares 1x1/],
    ["10000x10000.mkv", "bad_dimensions", /declares 10000x10000/],
    ["missing.mp4", "not_found", /ENOENT/],
  ];
  for (const [file, code, message] of cases) {
    test(`${file}: ${code}`, async () => {
      const check = (err: unknown) => {
        assert.ok(err instanceof VideoError, String(err));
        assert.equal(err.code, code);
        assert.match(err.message, message);
        assert.ok(err.status >= 400 && err.status < 500);
        return true;
      };
      await assert.rejects(probeVideo(p(file)), check);
      await assert.rejects(collect(decodeFrames(p(file), { size: 32, timeoutMs: 30_000 })), check);
    });
  }
});

test("a truncated faststart mp4 probes fine but decoding reports it truncated", async () => {
  assert.equal((await probeVideo(p("truncated-faststart.mp4"))).frames, 32);
  await assert.rejects(
    collect(decodeFrames(p("truncated-faststart.mp4"), { size: 32, timeoutMs: 30_000 })),
    {
      code: "truncated",
      message: /cut short: .*partial file/,
    },
  );
});

describe("encodeFrames", () => {
  let frames: Uint8Array[] = [];
  before(async () => {
    frames = await collect(
      decodeFrames(p("av.mp4"), { fps: 8, size: 32, maxFrames: 9, timeoutMs: 30_000 }),
    );
  });

  for (const [format, codec] of [
    ["mp4", "h264"],
    ["webm", "vp9"],
    ["gif", "gif"],
  ] as const) {
    test(`${format}: playable, right size and frame count`, async () => {
      const outPath = p(`out.${format}`);
      // An async source, as the model produces them
      async function* source() {
        yield* frames;
      }
      assert.deepEqual(
        await encodeFrames(source(), { width: 32, height: 32, fps: 8, format, outPath }),
        {
          frames: 9,
        },
      );
      const info = await probeVideo(outPath);
      assert.equal(info.codec, codec);
      assert.equal(info.width, 32);
      assert.equal(info.height, 32);
      if (format !== "gif") assert.equal(info.pixFmt, "yuv420p");
      const back = await collect(decodeFrames(outPath, { size: 32, timeoutMs: 30_000 }));
      assert.equal(back.length, 9);
      if (format === "mp4") {
        const bytes = readFileSync(outPath);
        assert.ok(
          bytes.indexOf("moov") < bytes.indexOf("mdat"),
          "moov is not before mdat (faststart)",
        );
      }
    });
  }

  test("a frame of the wrong size fails and leaves no file", async () => {
    const outPath = p("bad.mp4");
    await assert.rejects(
      encodeFrames([frames[0] as Uint8Array, new Uint8Array(10)], {
        width: 32,
        height: 32,
        fps: 8,
        format: "mp4",
        outPath,
      }),
      { code: "bad_dimensions", message: /frame 1 has 10 bytes/ },
    );
    assert.throws(() => statSync(outPath), /ENOENT/);
  });
});
