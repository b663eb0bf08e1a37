// A paced /healthz prober in a process of its own, as a load balancer's health check is: one
// request at a time, every --interval ms, for --seconds; prints the latencies (ms) as one JSON
// array. bench/load.ts runs it beside its clients, so that what it reports is the server's delay,
// not the delay of the busy process that sends the load (plain JS: no loader needed).
//   node bench/healthz-probe.mjs URL SECONDS INTERVAL_MS
const [url, seconds, interval] = process.argv.slice(2);
if (!url) {
  console.error("usage: node bench/healthz-probe.mjs URL SECONDS INTERVAL_MS");
  process.exit(2);
}
const until = Date.now() + Number(seconds) * 1000;
const times = [];
let failed = 0;
while (Date.now() < until) {
  const t0 = performance.now();
  try {
    const res = await fetch(`${url}/healthz`);
    await res.arrayBuffer();
    if (res.ok) times.push(performance.now() - t0);
    else failed++;
  } catch {
    failed++;
  }
  await new Promise((r) => setTimeout(r, Number(interval)));
}
process.stdout.write(`${JSON.stringify({ times, failed })}\n`);
