// Preloaded into a benchmarked server (`node --import ./bench/loop-monitor.mjs`): measures the
// event loop's delay with perf_hooks.monitorEventLoopDelay (10 ms resolution) and writes its
// percentiles as JSON to $DIFFUSABLE_LOOP_STATS, for the bench that started the server to read
// (plain JS: no loader needed). The bench sends SIGUSR2 twice: the first resets the histogram
// (start-up's model loading is not counted), the second writes the file (nothing is written
// meanwhile, so the monitor puts no file I/O on the loop it measures).
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.DIFFUSABLE_LOOP_STATS;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  const dump = () => {
    const stats = {
      p50: ms(h.percentile(50)),
      p99: ms(h.percentile(99)),
      max: ms(h.max),
      mean: ms(h.mean),
      count: h.count,
    };
    try {
      writeFileSync(file, JSON.stringify(stats));
    } catch {}
  };
  let signals = 0;
  process.on("SIGUSR2", () => {
    if (signals++ % 2 === 0) h.reset();
    else dump();
  });
}
