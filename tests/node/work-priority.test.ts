// Batch work yields the cores to the event loop: the model workers, the operator threads
// onnxruntime makes for them and the ffmpeg / ffprobe processes run at the configured nice value
// (DIFFUSABLE_WORK_NICE), the main thread as it was. Read from /proc, as the scheduler sees it.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { hostExec } from "../../src/pipeline/media/process-host.ts";
import { ModelRuntime } from "../../src/pipeline/runtime.ts";
import { parseConfig } from "../../src/server/config.ts";
import { fixtureBundle } from "./media.ts";

/** The nice value in a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line (field 19). */
const niceOf = (stat: string): number =>
  Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);

function threadNices(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      out.set(Number(tid), niceOf(readFileSync(`/proc/self/task/${tid}/stat`, "utf8")));
    } catch {
      // a thread that ended while we listed
    }
  }
  return out;
}

test("model threads and ffmpeg run at the work nice value, the event loop at its own", async () => {
  const before = threadNices();
  assert.equal(before.get(process.pid), 0, "the test starts at nice 0");
  const bundle = fixtureBundle();
  const runtime = await ModelRuntime.open({
    modelsDir: join(bundle, ".."),
    threads: 1,
    intraOpThreads: 2,
    nice: 7,
  });
  try {
    // Opening a session makes onnxruntime's operator threads (one besides the caller at 2).
    await runtime.pool.describe(join(bundle, "encoder.onnx"));
    const after = threadNices();
    const added = [...after].filter(([tid]) => !before.has(tid));
    const lowered = added.filter(([, nice]) => nice === 7);
    assert.ok(
      lowered.length >= 2,
      `the worker and its operator thread at nice 7; new threads: ${JSON.stringify(added)}`,
    );
    assert.equal(after.get(process.pid), 0, "the event loop's thread keeps its priority");

    const child = await hostExec("/bin/cat", ["/proc/self/stat"], { timeoutMs: 10_000 });
    assert.equal(child.error, null);
    assert.equal(niceOf(child.stdout), 7, "a process started for the pipeline inherits it");
  } finally {
    await runtime.close();
  }
});

test("DIFFUSABLE_WORK_NICE defaults to 10 and is refused outside 0..19", () => {
  assert.equal(parseConfig({}).workNice, 10);
  assert.equal(parseConfig({ DIFFUSABLE_WORK_NICE: "0" }).workNice, 0);
  for (const bad of ["20", "-1", "high"]) {
    assert.throws(() => parseConfig({ DIFFUSABLE_WORK_NICE: bad }), /DIFFUSABLE_WORK_NICE/);
  }
});

test("DIFFUSABLE_MODEL_WORKERS defaults to thread and is refused outside thread | process", () => {
  assert.equal(parseConfig({}).modelWorkers, "thread");
  assert.equal(parseConfig({ DIFFUSABLE_MODEL_WORKERS: "process" }).modelWorkers, "process");
  assert.throws(
    () => parseConfig({ DIFFUSABLE_MODEL_WORKERS: "fork" }),
    /DIFFUSABLE_MODEL_WORKERS/,
  );
});
