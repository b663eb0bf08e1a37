// Preloaded into a benchmarked server (`node --import ./bench/loop-monitor.mjs`): measures the
// event loop's delay with perf_hooks.monitorEventLoopDelay (10 ms resolution) and writes its
// percentiles as JSON to $DIFFUSABLE_LOOP_STATS, for the bench that started the server to read
// (plain JS: no loader needed). The bench sends SIGUSR2 twice: the first resets the histogram
// (start-up's model loading is not counted), the second writes the file (nothing is written
// meanwhile, so the monitor puts no file I/O on the loop it measures). It also counts the
// garbage collector's pauses of the main thread (count, total and longest ms, and those over 10 ms).
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";

const file = process.env.DIFFUSABLE_LOOP_STATS;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  // The main thread's garbage-collection pauses (they stop the loop as any synchronous work does).
  const KINDS = { 1: "minor", 2: "major", 4: "incremental", 8: "weakcb" }; // perf_hooks.constants
  let gc = { count: 0, total: 0, max: 0, over10: 0, maxKind: "" };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.total += e.duration;
      if (e.duration > gc.max) {
        gc.max = e.duration;
        gc.maxKind = KINDS[e.detail?.kind] ?? String(e.detail?.kind);
      }
      if (e.duration > 10) gc.over10++;
    }
  }).observe({ entryTypes: ["gc"] });
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  const dump = () => {
    const stats = {
      p50: ms(h.percentile(50)),
      p99: ms(h.percentile(99)),
      max: ms(h.max),
      mean: ms(h.mean),
      count: h.count,
      gc: { ...gc, total: Math.round(gc.total), max: Math.round(gc.max * 10) / 10 },
    };
    try {
      writeFileSync(file, JSON.stringify(stats));
    } catch {}
  };
  let signals = 0;
  process.on("SIGUSR2", () => {
    if (signals++ % 2 === 0) {
      h.reset();
      gc = { count: 0, total: 0, max: 0, over10: 0, maxKind: "" };
    } else dump();
  });
}
