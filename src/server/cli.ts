// The diffusable CLI:
//   diffusable serve
//   diffusable encode <files...> [--model M] [--mode clip|whole] [--fps N] [--dtype float32|float16] [--size bundle|native] --out DIR
//   diffusable keys create --name N [--role user|admin] | keys list | keys revoke <id>
//   diffusable runs list [--kind K] [--limit N] | runs import <folder...> | runs start ...
// Configuration comes from the environment (config.ts). `encode` runs locally, without a server,
// through the same runItem() as the job runner, so its latents are byte-identical to the API's.
// Bad arguments exit 2 with one line; failures exit 1.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AppError, errorInfo } from "../app-error.ts";
import { REPO_ROOT } from "../env.ts";
import { ModelRuntime } from "../pipeline/runtime.ts";
import { runItem } from "../pipeline/work/autoencoder-jobs.ts";
import { resolveModel } from "../pipeline/work/default-model.ts";
import { checkVideoInput } from "../pipeline/work/input-checks.ts";
import { EncodeOptionsSchema } from "../pipeline/work/job-requests.ts";
import { closeDb, openDb } from "../store/db.ts";
import { KEY_ROLES, type KeyRole, RUN_KINDS, type RunKind } from "../store/schema.ts";
import { StartRunSchema } from "../training/runs/launch.ts";
import { RunRegistry } from "../training/runs/registry.ts";
import { RunError } from "../training/runs/run-error.ts";
import { getRun, listRuns } from "../training/runs/run-store.ts";
import { type Config, ConfigError, parseConfig } from "./config.ts";
import { openStore } from "./open-store.ts";
import { describeZodError } from "./schemas.ts";
import { startServer } from "./serve.ts";

class UsageError extends AppError {
  constructor(message: string) {
    super("usage", message, 400);
  }
}

const USAGE = `usage: diffusable serve
       diffusable encode <files...> [--model M] [--mode clip|whole] [--fps N] [--dtype float32|float16] [--size bundle|native] --out DIR
       diffusable keys create --name N [--role user|admin]
       diffusable keys list
       diffusable keys revoke <id>
       diffusable runs list [--kind autoencoder|diffusion] [--limit N]
       diffusable runs import <folder...>
       diffusable runs start --kind autoencoder --config tiny|small|base --variant baseline|se [--steps N] [--threads N] [--run-id ID]
       diffusable runs start --kind diffusion --config tiny|small|compact|base --ae <AE run id> [--steps N] [--threads N] [--run-id ID]`;

/** Runs a parseArgs call, turning its errors into usage errors. */
/** Runs a parseArgs call; its error becomes one line (node's can run to three). */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError(((err as Error).message.split("\n")[0] ?? "").trim());
  }
}

/** `--fps -3` as `--fps=-3`: parseArgs takes a value starting with "-" for an option, so that the
 *  value's own check can answer ("fps must be greater than 0") rather than an ambiguity. */
function joinNegativeValues(args: string[], options: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    if (options.includes(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

async function serveCommand(config: Config): Promise<void> {
  const server = await startServer(config);
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    console.log(`diffusable: ${signal}, shutting down`);
    server.close().then(
      () => process.exit(0),
      (err) => {
        console.error(`diffusable: shutdown failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

async function encodeCommand(config: Config, args: string[]): Promise<number> {
  const { values, positionals } = usage(() =>
    parseArgs({
      args: joinNegativeValues(args, ["--fps"]),
      allowPositionals: true,
      options: {
        model: { type: "string" },
        mode: { type: "string" },
        fps: { type: "string" },
        dtype: { type: "string" },
        size: { type: "string" },
        out: { type: "string" },
      },
    }),
  );
  if (positionals.length === 0) throw new UsageError("encode: give at least one video file");
  if (!values.out) throw new UsageError("encode: --out DIR is required");
  const parsed = EncodeOptionsSchema.safeParse({
    model: values.model,
    mode: values.mode,
    fps: values.fps,
    dtype: values.dtype,
    size: values.size,
  });
  if (!parsed.success) throw new UsageError(`encode: ${describeZodError(parsed.error)}`);
  // npm scripts run in the repository root; INIT_CWD is where `npm run` was typed.
  const cwd = process.env.INIT_CWD || process.cwd();
  for (const file of positionals) {
    if (!existsSync(resolve(cwd, file))) throw new UsageError(`encode: no such file: ${file}`);
  }
  const { model: requested, ...options } = parsed.data;
  const outDir = resolve(cwd, String(values.out));
  mkdirSync(outDir, { recursive: true });
  const runtime = await ModelRuntime.open({
    modelsDir: config.modelsDir,
    threads: config.threads,
    providers: config.providers,
  });
  let failures = 0;
  try {
    const model = resolveModel(runtime, requested, config.defaultModel).name;
    const used = new Set<string>();
    for (const file of positionals) {
      let base = basename(file, extname(file)) || "video";
      for (let i = 1; used.has(base); i++) base = `${basename(file, extname(file))}-${i}`;
      used.add(base);
      try {
        // The API's checks before the 202, DIFFUSABLE_MAX_SECONDS included.
        await checkVideoInput(runtime.loaded(model), resolve(cwd, file), {
          mode: options.mode,
          fps: options.fps,
          maxSeconds: config.maxSeconds,
          size: options.size,
          maxPixels: config.maxPixels,
        });
        const result = await runItem({
          runtime,
          kind: "encode",
          model,
          options,
          inputPath: resolve(cwd, file),
          sourceName: basename(file),
          outDir,
          baseName: base,
        });
        const shape = (result.metadata?.latentShape as number[] | undefined)?.join("x") ?? "?";
        console.log(`${file} -> ${result.outputs.latents} (${shape}, sha256 ${result.sha256})`);
      } catch (err) {
        failures++;
        const { code, message } = errorInfo(err);
        console.error(`${file}: ${code}: ${message}`);
      }
    }
  } finally {
    await runtime.close();
  }
  return failures > 0 ? 1 : 0;
}

async function keysCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "create" && sub !== "list" && sub !== "revoke") {
    throw new UsageError(`keys: expected create, list or revoke, got ${sub ?? "nothing"}`);
  }
  const { values, positionals } = usage(() =>
    parseArgs({
      args: rest,
      allowPositionals: true,
      options: { name: { type: "string" }, role: { type: "string" } },
    }),
  );
  if (sub === "create") {
    if (!values.name) throw new UsageError("keys create: --name is required");
    const role = (values.role ?? "user") as KeyRole;
    if (!KEY_ROLES.includes(role)) {
      throw new UsageError(`keys create: --role must be user or admin, got "${values.role}"`);
    }
    if (positionals.length > 0) throw new UsageError(`keys create: unexpected ${positionals[0]}`);
  }
  if (sub === "revoke" && positionals.length !== 1) {
    throw new UsageError("keys revoke: give exactly one key id");
  }
  // The keys of the server's store: the SQLite file, or DIFFUSABLE_DATABASE_URL's PostgreSQL.
  const opened = await openStore(config, { keysOnly: true });
  const db = opened.store;
  try {
    if (sub === "create") {
      const { key, secret } = await db.createKey(
        String(values.name),
        (values.role ?? "user") as KeyRole,
      );
      console.log(`created ${key.role} key ${key.id} (${key.name}); the secret is shown only now:`);
      console.log(secret);
    } else if (sub === "list") {
      console.log("id\trole\tstatus\tcreated\tname");
      for (const k of await db.listKeys()) {
        console.log(
          `${k.id}\t${k.role}\t${k.revokedAt ? `revoked ${k.revokedAt}` : "active"}\t${k.createdAt}\t${k.name}`,
        );
      }
    } else {
      const key = await db.revokeKey(positionals[0] as string);
      if (!key) {
        console.error(`diffusable: no API key "${positionals[0]}"`);
        return 1;
      }
      console.log(`revoked ${key.id} (${key.name})`);
    }
  } finally {
    await opened.close();
  }
  return 0;
}

async function runsCommand(config: Config, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "list" && sub !== "import" && sub !== "start") {
    throw new UsageError(`runs: expected list, import or start, got ${sub ?? "nothing"}`);
  }
  const { values, positionals } = usage(() =>
    parseArgs({
      args: rest,
      allowPositionals: sub === "import",
      options: {
        kind: { type: "string" },
        limit: { type: "string" },
        config: { type: "string" },
        variant: { type: "string" },
        steps: { type: "string" },
        threads: { type: "string" },
        ae: { type: "string" },
        "run-id": { type: "string" },
      },
    }),
  );
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`runs ${sub}: --${name} must be a whole number`);
    return Number(v);
  };
  if (values.kind !== undefined && !RUN_KINDS.includes(values.kind as RunKind)) {
    throw new UsageError(`runs ${sub}: --kind must be autoencoder or diffusion`);
  }
  if (sub === "import" && positionals.length === 0) {
    throw new UsageError("runs import: give one or more run folders");
  }
  let request: ReturnType<typeof StartRunSchema.parse> | undefined;
  if (sub === "start") {
    const parsed = StartRunSchema.safeParse({
      kind: values.kind,
      config: values.config,
      ...(values.variant !== undefined ? { variant: values.variant } : {}),
      ...(values.ae !== undefined ? { ae_run_id: values.ae } : {}),
      ...(values["run-id"] !== undefined ? { run_id: values["run-id"] } : {}),
      ...(values.steps !== undefined ? { steps: int("steps", values.steps) } : {}),
      ...(values.threads !== undefined ? { threads: int("threads", values.threads) } : {}),
    });
    if (!parsed.success) throw new UsageError(`runs start: ${describeZodError(parsed.error)}`);
    request = parsed.data;
  }
  const db = openDb(config.dbFile);
  const registry = new RunRegistry({ db, runsDir: config.runsDir });
  try {
    if (sub === "list") {
      const limit = int("limit", values.limit) ?? 100;
      const page = listRuns(db, {
        limit,
        ...(values.kind ? { kind: values.kind as RunKind } : {}),
      });
      for (const r of page.runs) {
        const steps = `${r.step}/${r.steps ?? "?"}`;
        const ae = r.autoencoderRunId ? `ae=${r.autoencoderRunId}` : "";
        console.log(
          `${r.id}\t${r.kind}\t${r.variant ?? "-"}\t${r.status}\t${steps}\t${r.source}\t${ae}`,
        );
      }
      return 0;
    }
    if (sub === "import") {
      let failed = 0;
      for (const folder of positionals) {
        try {
          const r = registry.importFolder(resolve(process.env.INIT_CWD || process.cwd(), folder));
          console.log(
            `${r.run.id}: ${r.accepted} events (${r.added} new), ${r.rejected.length} rejected, ${r.run.status}`,
          );
          for (const bad of r.rejected) console.log(`  line ${bad.line}: ${bad.reason}`);
        } catch (err) {
          if (!(err instanceof RunError)) throw err;
          console.error(`diffusable: ${err.code}: ${err.message}`);
          failed += 1;
        }
      }
      return failed > 0 ? 1 : 0;
    }
    // start: follow the run here until it ends (Ctrl-C stops following, not the trainer; the
    // server re-attaches it when it starts).
    let run: ReturnType<typeof registry.startRun>;
    try {
      run = registry.startRun(request as NonNullable<typeof request>);
    } catch (err) {
      if (!(err instanceof RunError)) throw err;
      console.error(`diffusable: ${err.code}: ${err.message}`);
      return 1;
    }
    console.log(`started ${run.id} (pid ${run.pid}) in ${run.folder}`);
    let lastStep = -1;
    await registry.waitUntil(
      () => {
        const now = getRun(db, run.id);
        if (now && now.step !== lastStep) {
          lastStep = now.step;
          console.log(`${run.id}: step ${now.step}/${now.steps ?? "?"}`);
        }
        return now?.status !== "running";
      },
      2 ** 31 - 1,
    );
    const end = getRun(db, run.id);
    console.log(`${run.id}: ${end?.status}${end?.error ? `: ${end.error}` : ""}`);
    return end?.status === "finished" ? 0 : 1;
  } finally {
    registry.stop();
    closeDb(db);
  }
}

/** The usage lines of one command (all of them for an unknown one). */
function usageOf(command: string | undefined): string {
  const lines = USAGE.replace(/^usage: /, "       ")
    .split("\n")
    .filter((l) => command === undefined || l.trim().startsWith(`diffusable ${command}`));
  return `usage:\n${(lines.length ? lines : USAGE.split("\n")).join("\n")}`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    version: string;
  };
  return `diffusable ${pkg.version}`;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  // --help and --version work on every command (and before any configuration is read).
  if (argv.includes("--version") || argv.includes("-V")) {
    console.log(version());
    return 0;
  }
  if (command !== "help" && (args.includes("--help") || args.includes("-h"))) {
    console.log(usageOf(command));
    return 0;
  }
  const config = parseConfig();
  switch (command) {
    case "serve":
      if (args.length > 0) throw new UsageError(`serve takes no arguments (got ${args[0]})`);
      await serveCommand(config);
      return -1; // keeps running
    case "encode":
      return encodeCommand(config, args);
    case "keys":
      return await keysCommand(config, args);
    case "runs":
      return runsCommand(config, args);
    case undefined:
    case "help":
    case "--help":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}" (serve, encode, keys, runs)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`diffusable: ${err.message}`);
      process.exitCode = 2;
    } else {
      const { code, message } = errorInfo(err);
      console.error(`diffusable: ${code}: ${message.split("\n")[0]}`);
      process.exitCode = 1;
    }
  },
);
