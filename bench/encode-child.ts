// One measurement for bench/encode.ts, in its own process so that its peak RSS is its own:
//   node --import tsx bench/encode-child.ts MODELS_DIR BUNDLE INPUT MODE [SIZE]
// (SIZE: bundle, the default, or native: bench/native-size.ts)
// Prints one JSON line: peak RSS (this process, worker threads included; ffmpeg is a separate
// process with its own bounded buffers), wall time and what was encoded.

import { type EncodeMode, encodeFile } from "../src/pipeline/autoencoder/encode.ts";
import type { FrameSize } from "../src/pipeline/autoencoder/tiling.ts";
import { ModelRuntime } from "../src/pipeline/runtime.ts";

const [modelsDir, bundle, input, mode, size = "bundle"] = process.argv.slice(2) as [
  string,
  string,
  string,
  EncodeMode,
  FrameSize?,
];
const rt = await ModelRuntime.open({ modelsDir, threads: 1 });
try {
  const start = performance.now();
  const r = await encodeFile(rt, bundle, input, { mode, dtype: "float32", size });
  const seconds = (performance.now() - start) / 1000;
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(
    JSON.stringify({
      maxRssMiB,
      seconds,
      frames: r.meta.frames,
      latentShape: r.meta.latentShape,
      size: r.meta.size,
      tiles: r.meta.tiles,
    }),
  );
} finally {
  await rt.close();
}
