// A service process's share of the queue, as a child process the pg-work-queue test can kill:
// takes jobs from the queue at DIFFUSABLE_DATABASE_URL and prints one line per event. A job
// whose id starts with "hang" never ends (the process is killed holding it); any other is done
// at once.

import { PgWorkQueue } from "../../src/store/pg-work-queue.ts";

const url = process.env.DIFFUSABLE_DATABASE_URL;
if (!url) throw new Error("pg-queue-worker: DIFFUSABLE_DATABASE_URL is not set");
const queue = await PgWorkQueue.open(url, {
  workerId: process.env.WORKER_ID,
  queue: process.env.QUEUE,
  heartbeatMs: 200,
  deadAfterMs: 1500,
  pollMs: 500,
});
await queue.work(async (work) => {
  console.log(JSON.stringify({ event: "started", worker: queue.workerId, ...work }));
  if (work.jobId.startsWith("hang")) await new Promise(() => {});
  console.log(JSON.stringify({ event: "done", worker: queue.workerId, ...work }));
});
console.log(JSON.stringify({ event: "ready", worker: queue.workerId }));
process.on("SIGTERM", () => {
  void queue.close().then(() => process.exit(0));
});
