// The layering of src (docs/architecture.md), checked on the import statements themselves:
// which layer may import which, no import cycles, and no two source files with one name.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "./python.ts";

const SRC = join(REPO_ROOT, "src");

/** Every .ts/.mjs file under src (the Python package aside), repo-relative. */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === "diffusable" ? [] : sources(path);
    return /\.(ts|mjs)$/.test(e.name) ? [relative(REPO_ROOT, path)] : [];
  });
}

/** The src files a file imports (static, dynamic and worker URLs), repo-relative. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|new URL\(\s*)"(\.[^"]+)"/g)];
  return specs.map((m) => relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), m[1] as string)));
}

/** The layer of a file: src/<folder>/..., or "base" for the files directly in src. */
function layerOf(file: string): string {
  const parts = file.split("/");
  return parts.length === 2 ? "base" : (parts[1] as string);
}

/** Which layers each layer may import (itself always). */
const ALLOWED: Record<string, string[]> = {
  base: [],
  store: ["base"],
  pipeline: ["base", "store"],
  training: ["base", "store"],
  server: ["base", "store", "pipeline", "training"],
};

const files = sources();
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => t.startsWith("src/"))]));

test("each layer imports only the layers below it", () => {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    for (const target of targets) {
      const to = layerOf(target);
      if (to !== from && !(ALLOWED[from] ?? []).includes(to)) wrong.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("no import cycles between source files", () => {
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      cycles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
    state.set(file, "done");
  };
  for (const file of files) visit(file, []);
  assert.deepEqual(cycles, []);
});

test("no two source files share a name", () => {
  const seen = new Map<string, string[]>();
  for (const file of files) {
    const name = basename(file).replace(/\.(ts|mjs)$/, "");
    seen.set(name, [...(seen.get(name) ?? []), file]);
  }
  // A worker's .mjs bootstrap and its .ts body are one module.
  const oneModule = (paths: string[]) =>
    paths.length === 2 && new Set(paths.map((p) => p.replace(/\.(ts|mjs)$/, ""))).size === 1;
  const twice = [...seen.values()].filter((paths) => paths.length > 1 && !oneModule(paths));
  assert.deepEqual(twice, []);
});
