// The diffusable CLI:
//   diffusable serve
//   diffusable encode <files...> --model M [--mode clip|whole] [--fps N] [--dtype float32|float16] --out DIR
//   diffusable keys create --name N [--role user|admin] | keys list | keys revoke <id>
// Configuration comes from the environment (config.ts). `encode` runs locally, without a server,
// through the same runItem() as the job runner, so its latents are byte-identical to the API's.
// Bad arguments exit 2 with one line; failures exit 1.

import { existsSync, mkdirSync } from "node:fs";
import { basename, extname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { errorInfo, runItem } from "../pipeline/jobs.ts";
import { ModelRuntime } from "../pipeline/runtime.ts";
import { closeDb, openDb } from "../pipeline/store/db.ts";
import { createKey, listKeys, revokeKey } from "../pipeline/store/keys.ts";
import { KEY_ROLES, type KeyRole } from "../pipeline/store/schema.ts";
import { type Config, ConfigError, parseConfig } from "./config.ts";
import { describeZodError, EncodeOptionsSchema } from "./schemas.ts";
import { startServer } from "./serve.ts";

class UsageError extends Error {}

const USAGE = `usage: diffusable serve
       diffusable encode <files...> --model M [--mode clip|whole] [--fps N] [--dtype float32|float16] --out DIR
       diffusable keys create --name N [--role user|admin]
       diffusable keys list
       diffusable keys revoke <id>`;

/** Runs a parseArgs call, turning its errors into usage errors. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
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
      args,
      allowPositionals: true,
      options: {
        model: { type: "string" },
        mode: { type: "string" },
        fps: { type: "string" },
        dtype: { type: "string" },
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
  });
  if (!parsed.success) throw new UsageError(`encode: ${describeZodError(parsed.error)}`);
  for (const file of positionals) {
    if (!existsSync(file)) throw new UsageError(`encode: no such file: ${file}`);
  }
  const { model, ...options } = parsed.data;
  const outDir = resolve(String(values.out));
  mkdirSync(outDir, { recursive: true });
  const runtime = await ModelRuntime.open({
    modelsDir: config.modelsDir,
    threads: config.threads,
    providers: config.providers,
  });
  let failures = 0;
  try {
    runtime.bundle(model);
    const used = new Set<string>();
    for (const file of positionals) {
      let base = basename(file, extname(file)) || "video";
      for (let i = 1; used.has(base); i++) base = `${basename(file, extname(file))}-${i}`;
      used.add(base);
      try {
        const result = await runItem({
          runtime,
          kind: "encode",
          model,
          options,
          inputPath: resolve(file),
          sourceName: basename(file),
          outDir,
          baseName: base,
        });
        const shape = (result.metadata.latentShape as number[] | undefined)?.join("x") ?? "?";
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

function keysCommand(config: Config, args: string[]): number {
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
  const db = openDb(config.dbFile);
  try {
    if (sub === "create") {
      const { key, secret } = createKey(
        db,
        String(values.name),
        (values.role ?? "user") as KeyRole,
      );
      console.log(`created ${key.role} key ${key.id} (${key.name}); the secret is shown only now:`);
      console.log(secret);
    } else if (sub === "list") {
      for (const k of listKeys(db)) {
        console.log(
          `${k.id}\t${k.role}\t${k.revokedAt ? `revoked ${k.revokedAt}` : "active"}\t${k.createdAt}\t${k.name}`,
        );
      }
    } else {
      const key = revokeKey(db, positionals[0] as string);
      if (!key) {
        console.error(`diffusable: no API key "${positionals[0]}"`);
        return 1;
      }
      console.log(`revoked ${key.id} (${key.name})`);
    }
  } finally {
    closeDb(db);
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const config = parseConfig();
  switch (command) {
    case "serve":
      if (args.length > 0) throw new UsageError(`serve takes no arguments (got ${args[0]})`);
      await serveCommand(config);
      return -1; // keeps running
    case "encode":
      return encodeCommand(config, args);
    case "keys":
      return keysCommand(config, args);
    case undefined:
    case "help":
    case "--help":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}" (serve, encode, keys)`);
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
