// Start-up: data dir, database (migrations applied), model runtime, the job runner of every kind
// (crash recovery first), then the HTTP server. Returns a handle whose close() stops everything
// in order.

import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { ModelRuntime } from "../pipeline/runtime.ts";
import { JobRunner } from "../pipeline/work/job-runner.ts";
import { startRetention } from "../pipeline/work/retention.ts";
import { countKeys } from "../store/api-keys.ts";
import { closeDb, openDb } from "../store/db.ts";
import { RunRegistry } from "../training/runs/registry.ts";
import { createApp } from "./app.ts";
import { answerClientError } from "./client-error.ts";
import { type Config, checkDefaultModel } from "./config.ts";
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
  const db = openDb(config.dbFile);
  let runtime: ModelRuntime | undefined;
  try {
    runtime = await ModelRuntime.open({
      modelsDir: config.modelsDir,
      threads: config.threads,
      providers: config.providers,
    });
    checkDefaultModel(runtime, config); // a bad DIFFUSABLE_DEFAULT_MODEL stops start-up here
    const runner = new JobRunner({
      db,
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
    const stopRetention = startRetention(db, config.dataDir, config.retentionDays, log);
    const dispatcher = new WebhookDispatcher(db, config.webhooks, jobWebhookPayload(db), log);
    dispatcher.start();
    const app = createApp({ db, runtime, runner, config, registry });
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
    if (countKeys(db) === 0) {
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
        closeDb(db);
      },
    };
  } catch (err) {
    await runtime?.close();
    closeDb(db);
    throw err;
  }
}
