// The PostgreSQL work queue (src/store/pg-work-queue.ts) on a real server the test starts: two
// processes share one queue and run each job once; a process killed with SIGKILL while holding a
// job has it run by the other, as its second try; a job that fails spends its three tries.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { PgWorkQueue, type TakenWork } from "../../src/store/pg-work-queue.ts";
import { type PostgresServer, startPostgres } from "./pg-server.ts";
import { REPO_ROOT } from "./python.ts";

let pg: PostgresServer;
before(async () => {
  pg = await startPostgres();
});
after(async () => {
  await pg?.stop();
  assert.equal(existsSync(pg.dir), false, "the server's folder is left behind");
});

interface Line {
  event: string;
  worker: string;
  jobId?: string;
  attempt?: number;
}

/** A child worker process and the lines it has printed. */
function startWorker(id: string): {
  proc: ChildProcess;
  lines: Line[];
  seen(p: (l: Line) => boolean): Promise<Line>;
} {
  const proc = spawn(process.execPath, ["--import", "tsx", "tests/node/pg-queue-worker.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, DIFFUSABLE_DATABASE_URL: pg.url, WORKER_ID: id, QUEUE: "shared" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: Line[] = [];
  const waiters: (() => void)[] = [];
  let buf = "";
  proc.stdout?.on("data", (d) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const seen = async (p: (l: Line) => boolean): Promise<Line> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const hit = lines.find(p);
      if (hit) return hit;
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`worker ${id} exited`);
      if (Date.now() > deadline)
        throw new Error(`worker ${id}: not seen in 60 s: ${JSON.stringify(lines)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 500);
      });
    }
  };
  return { proc, lines, seen };
}

async function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise((r) => proc.once("exit", r));
}

test("two processes share the queue; a SIGKILLed one's job is finished by the other as its second try", async () => {
  const a = startWorker("worker-a");
  const b = startWorker("worker-b");
  const producer = await PgWorkQueue.open(pg.url, {
    heartbeatMs: 200,
    deadAfterMs: 1500,
    queue: "shared",
  });
  try {
    await a.seen((l) => l.event === "ready");
    await b.seen((l) => l.event === "ready");
    for (let i = 0; i < 8; i++) await producer.enqueue({ jobId: `quick-${i}`, kind: "generation" });
    const done = async () => [...a.lines, ...b.lines].filter((l) => l.event === "done");
    for (let t = 0; (await done()).length < 8 && t < 120; t++)
      await new Promise((r) => setTimeout(r, 250));
    const ids = (await done()).map((l) => l.jobId).sort();
    // each job ran once, by one of the two processes
    assert.deepEqual(ids, [...Array(8).keys()].map((i) => `quick-${i}`).sort());

    await producer.enqueue({ jobId: "hang-1", kind: "encoding" });
    const holder = await Promise.race([
      a.seen((l) => l.event === "started" && l.jobId === "hang-1").then(() => a),
      b.seen((l) => l.event === "started" && l.jobId === "hang-1").then(() => b),
    ]);
    const other = holder === a ? b : a;
    assert.equal(holder.lines.find((l) => l.jobId === "hang-1")?.attempt, 1);
    holder.proc.kill("SIGKILL");
    await exited(holder.proc);
    // the other process takes it as its second try (it hangs there too: that is the job)
    const retaken = await other.seen((l) => l.event === "started" && l.jobId === "hang-1");
    assert.equal(retaken.attempt, 2);
    assert.notEqual(retaken.worker, holder === a ? "worker-a" : "worker-b");
  } finally {
    a.proc.kill("SIGKILL");
    b.proc.kill("SIGKILL");
    await Promise.all([exited(a.proc), exited(b.proc)]);
    await producer.close();
  }
});

test("a job that fails spends three tries, then stays failed; close() waits for the job in hand", async () => {
  // its own queue: the first test's hanging job, put back when its processes died, is not ours
  const queue = await PgWorkQueue.open(pg.url, {
    heartbeatMs: 200,
    deadAfterMs: 1500,
    pollMs: 500,
    queue: "tries",
  });
  const tries: TakenWork[] = [];
  let finished = false;
  try {
    await queue.work(async (work) => {
      tries.push(work);
      if (work.jobId === "slow") {
        await new Promise((r) => setTimeout(r, 1500));
        finished = true;
        return;
      }
      throw new Error("this job always fails");
    });
    await queue.enqueue({ jobId: "broken", kind: "decoding" });
    for (let t = 0; tries.length < 3 && t < 120; t++) await new Promise((r) => setTimeout(r, 250));
    await new Promise((r) => setTimeout(r, 1500)); // no fourth try comes
    assert.deepEqual(
      tries.map((w) => w.attempt),
      [1, 2, 3],
    );
    await queue.enqueue({ jobId: "slow", kind: "decoding" });
    for (let t = 0; tries.length < 4 && t < 120; t++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(tries.at(-1)?.jobId, "slow");
  } finally {
    await queue.close();
  }
  assert.equal(finished, true, "close() returned before the job in hand ended");
  const check = await PgWorkQueue.open(pg.url, { queue: "tries" });
  try {
    const counts = await check.counts();
    assert.equal(counts.failed, 1, JSON.stringify(counts));
    assert.equal(counts.completed, 1); // the slow one
  } finally {
    await check.close();
  }
});
