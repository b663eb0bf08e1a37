// Asks a running diffusable service for videos of every class of a model, over HTTP only, and
// saves them with a samples.json that `python3 -m diffusable.experiments.class_score videos DIR` scores.
//
//   npm run generate:per-class -- --key dfs_... [--url http://127.0.0.1:$PORT] [--model small-se]
//                                 [--n 4] [--seed 1000] [--format mp4] [--out runs/samples]
//                                 [--image FILE | --video FILE [--output continuation|whole]]
//                                 [--frames F] [--steps S]
//   --help, --version; --url defaults to the server's own default (HOST, PORT: 127.0.0.1:8080);
//   --out, --image and --video are relative to where `npm run` was typed (INIT_CWD).
//   --image starts every class's clips from that picture (image-to-video); --video continues
//   that clip by --frames frames (extension); both are sent as multipart, as the API takes them.
//
// Each class gets one request for n clips with the same seed. One readable line and exit 1 on
// any failure.

import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { BundleInfo } from "../src/pipeline/runtime.ts";

interface Generation {
  id: string;
  status: string;
  seed: number;
  error: { code: string; message: string } | null;
  outputs: { index: number; sha256: string; url: string }[];
}

const USAGE = `usage: npm run generate:per-class -- --key dfs_... [--url URL] [--model M] [--n 4] [--seed 1000] [--format mp4] [--out runs/samples] [--image FILE | --video FILE [--output continuation|whole]] [--frames F] [--steps S]`;
if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(USAGE);
  process.exit(0);
}
if (process.argv.includes("--version")) {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  console.log(`diffusable ${pkg.version}`);
  process.exit(0);
}

const { values: opt } = parseArgs({
  options: {
    url: {
      type: "string",
      default: `http://${process.env.HOST || "127.0.0.1"}:${process.env.PORT || "8080"}`,
    },
    key: { type: "string", default: process.env.DIFFUSABLE_KEY },
    model: { type: "string" },
    n: { type: "string", default: "4" },
    seed: { type: "string", default: "1000" },
    format: { type: "string", default: "mp4" },
    out: { type: "string", default: "runs/samples" },
    image: { type: "string" },
    video: { type: "string" },
    output: { type: "string" },
    frames: { type: "string" },
    steps: { type: "string" },
  },
});

function fail(message: string): never {
  console.error(`generate-per-class: ${message}`);
  process.exit(1);
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${opt.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${opt.key}`, ...(init.headers ?? {}) },
  }).catch((err: Error) => fail(`${opt.url}: ${err.message}`));
  if (!res.ok) fail(`${init.method ?? "GET"} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function main() {
  if (!opt.key) fail("an API key is needed: --key or DIFFUSABLE_KEY");
  const n = Number(opt.n);
  const seed = Number(opt.seed);
  if (opt.image && opt.video) fail("give --image or --video, not both");
  if (opt.output && !opt.video) fail("--output is for an extension (--video)");
  const cwd = process.env.INIT_CWD || process.cwd();
  const inputField = opt.image ? "image" : opt.video ? "video" : null;
  const inputPath = opt.image ?? opt.video;
  let input: { name: string; bytes: Buffer } | null = null;
  if (inputField && inputPath) {
    try {
      input = { name: basename(inputPath), bytes: readFileSync(resolve(cwd, inputPath)) };
    } catch (err) {
      fail(`--${inputField} ${inputPath}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  const { models } = await call<{ models: BundleInfo[] }>("/v1/models");
  const generators = models.filter((m) => m.generate);
  const model = opt.model
    ? models.find((m) => m.name === opt.model)
    : (generators.find((m) => m.variant === "se") ?? generators[0]);
  if (!model)
    fail(`no model ${opt.model ?? "that can generate"}; loaded: ${models.map((m) => m.name)}`);
  const dir = join(resolve(cwd, opt.out ?? "runs/samples"), model.name);
  await mkdir(dir, { recursive: true });

  // Clip i of a job starts from slice i of the job seed's noise (docs/sampler.md).
  const items: { file: string; label: string; seed: number; index: number; sha256: string }[] = [];
  const started = performance.now();
  for (const label of model.classes) {
    const body: Record<string, string | number> = {
      model: model.name,
      label,
      seed,
      n,
      format: opt.format ?? "mp4",
      ...(opt.frames ? { frames: Number(opt.frames) } : {}),
      ...(opt.steps ? { steps: Number(opt.steps) } : {}),
      ...(opt.output ? { output: opt.output } : {}),
    };
    let init: RequestInit;
    if (input && inputField) {
      // Image-to-video or extension: the same fields as text, beside the file.
      const form = new FormData();
      for (const [k, v] of Object.entries(body)) form.append(k, String(v));
      form.append(inputField, new Blob([input.bytes]), input.name);
      init = { method: "POST", headers: { prefer: "wait=120" }, body: form };
    } else {
      init = {
        method: "POST",
        headers: { "content-type": "application/json", prefer: "wait=120" },
        body: JSON.stringify(body),
      };
    }
    let g = await call<Generation>("/v1/generations", init);
    while (g.status === "queued" || g.status === "running") {
      await new Promise((r) => setTimeout(r, 500));
      g = await call<Generation>(`/v1/generations/${g.id}`);
    }
    if (g.status !== "succeeded")
      fail(`${label}: generation ${g.id} ${g.status}: ${g.error?.message}`);
    for (const o of g.outputs) {
      const res = await fetch(`${opt.url}${o.url}`, {
        headers: { authorization: `Bearer ${opt.key}` },
      });
      if (!res.ok) fail(`${o.url}: ${res.status}`);
      const file = `${label}-${o.index}.${opt.format}`;
      await writeFile(join(dir, file), Buffer.from(await res.arrayBuffer()));
      items.push({ file, label, seed: g.seed, index: o.index, sha256: o.sha256 });
    }
    console.log(`${label}: ${g.outputs.length} clip(s), generation ${g.id}`);
  }
  const seconds = (performance.now() - started) / 1000;
  const listing = {
    model: model.name,
    variant: model.variant,
    url: opt.url,
    resolution: model.resolution,
    frames: opt.frames ? Number(opt.frames) : model.frames.default,
    format: opt.format,
    ...(input ? { input: { [inputField as string]: input.name, output: opt.output ?? null } } : {}),
    seconds,
    items,
  };
  await writeFile(join(dir, "samples.json"), `${JSON.stringify(listing, null, 2)}\n`);
  console.log(
    `${items.length} clips of ${model.classes.length} classes in ${seconds.toFixed(1)} s -> ${dir}`,
  );
}

await main();
