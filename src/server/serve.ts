// Start-up: data dir, store (the SQLite file, or PostgreSQL and its work queue; migrations
// applied), model runtime, the job runner of every kind (crash recovery first), then the HTTP
// server. Returns a handle whose close() stops everything
// in order.

import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { ModelRuntime } from "../pipeline/runtime.ts";
import { JobRunner } from "../pipeline/work/job-runner.ts";
import { startRetention } from "../pipeline/work/retention.ts";
import { RunRegistry } from "../training/runs/registry.ts";
import { createApp } from "./app.ts";
import { answerClientError } from "./client-error.ts";
import { type Config, checkDefaultModel } from "./config.ts";
import { openStore } from "./open-store.ts";
import { jobWebhookPayload, WebhookDispatcher } from "./webhooks.ts";

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function startServer(
  config: Config,
  log: (line: string) => void = (line) => console.log(line),
): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true });
  const opened = await openStore(config);
  const { store, db, queue } = opened;
  let runtime: ModelRuntime | undefined;
  try {
    runtime = await ModelRuntime.open({
      modelsDir: config.modelsDir,
      threads: config.threads,
      providers: config.providers,
      nice: config.workNice,
      isolation: config.modelWorkers,
    });
    checkDefaultModel(runtime, config); // a bad DIFFUSABLE_DEFAULT_MODEL stops start-up here
    const runner = new JobRunner({
      store,
      queue,
      runtime,
      dataDir: config.dataDir,
      concurrency: { autoencoder: config.jobConcurrency, generation: config.generationConcurrency },
      maxBatch: config.generationBatch,
      log,
    });
    await runner.start();
    const registry = new RunRegistry({
      db,
      runsDir: config.runsDir,
      importDir: config.runsImportDir,
      log,
    });
    const runs = registry.start();
    if (runs.reattached.length + runs.interrupted.length + runs.imported.length > 0) {
      log(
        `diffusable: runs: re-attached ${runs.reattached.length}, interrupted ${runs.interrupted.length}, imported ${runs.imported.length}`,
      );
    }
    const stopRetention = startRetention(store, config.dataDir, config.retentionDays, log);
    const dispatcher = new WebhookDispatcher(store, config.webhooks, jobWebhookPayload(store), log);
    dispatcher.start();
    const app = createApp({ store, db, runtime, runner, config, registry });
    const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host });
    server.on("clientError", answerClientError);
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    const address = server.address() as AddressInfo;
    const url = `http://${config.host}:${address.port}`;
    const models = runtime.bundles().map((b) => b.name);
    for (const bad of runtime.invalidBundles()) {
      log(`diffusable: skipping invalid bundle ${bad.dir}: ${bad.message}`);
    }
    log(`diffusable: data in ${config.dataDir}; models: ${models.join(", ") || "(none)"}`);
    log(`diffusable: jobs in ${opened.describe}`);
    if ((await store.countKeys()) === 0) {
      log(
        "diffusable: there are no API keys yet; create one with\n" +
          "  npm run keys -- create --name admin --role admin\n" +
          "(same DIFFUSABLE_DATA_DIR); the secret is printed once.",
      );
    }
    log(`diffusable: listening on ${url}`);
    const rt = runtime;
    return {
      url,
      async close() {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        });
        stopRetention();
        await dispatcher.stop();
        registry.stop();
        await runner.stop();
        await rt.close();
        await opened.close();
      },
    };
  } catch (err) {
    await runtime?.close();
    await opened.close();
    throw err;
  }
}
