// One measurement for bench/encode.ts, in its own process so that its peak RSS is its own:
//   node --import tsx bench/encode-child.ts MODELS_DIR BUNDLE INPUT MODE
// Prints one JSON line: peak RSS (this process, worker threads included; ffmpeg is a separate
// process with its own bounded buffers), wall time and what was encoded.

import { type EncodeMode, encodeFile } from "../src/pipeline/autoencoder/encode.ts";
import { ModelRuntime } from "../src/pipeline/runtime.ts";

const [modelsDir, bundle, input, mode] = process.argv.slice(2) as [
  string,
  string,
  string,
  EncodeMode,
];
const rt = await ModelRuntime.open({ modelsDir, threads: 1 });
try {
  const start = performance.now();
  const r = await encodeFile(rt, bundle, input, { mode, dtype: "float32" });
  const seconds = (performance.now() - start) / 1000;
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(
    JSON.stringify({ maxRssMiB, seconds, frames: r.meta.frames, latentShape: r.meta.latentShape }),
  );
} finally {
  await rt.close();
}
