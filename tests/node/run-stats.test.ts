// The statistics over seeds (src/training/runs/seed-stats.ts) and the experiment view
// (run-grid.ts): Student's t quantile against scipy and closed forms, the log-scale Welch
// interval against a direct computation, the conclusions' wording, the grouping by experiment and
// arm of the fixture runs (tests/node/fixtures/grid-runs, imported into SQLite by the registry's
// importer), and the cross-check: the Python module diffusable.experiments.seed_stats run on the same folder
// gives the same numbers (1e-9) and the same conclusions.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { closeDb, type Db, openDb } from "../../src/store/db.ts";
import { buildComparison, FD_METRICS } from "../../src/training/runs/run-compare.ts";
import { buildGrid, diffusionGroups, type Grid } from "../../src/training/runs/run-grid.ts";
import { importRunFolder } from "../../src/training/runs/run-import.ts";
import { storeRunReader } from "../../src/training/runs/run-reader.ts";
import {
  conclude,
  logRelDiff,
  type MetricStats,
  mean,
  metricLines,
  pairedCurve,
  pairedLogRelDiff,
  SEED_METRICS,
  type SeedStats,
  sampleSd,
  seedStats,
  studentTCdf,
  studentTQuantile,
  verdict,
} from "../../src/training/runs/seed-stats.ts";
import { FINALS, GRID_RUNS_DIR, runId, valueAt, writeGridFixture } from "./grid-fixture.ts";
import { PYTHON, REPO_ROOT } from "./python.ts";
import { tempDir } from "./server-helpers.ts";

const close = (a: number, b: number, tol = 1e-9, msg = "") =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${msg}: ${a} vs ${b}`);

describe("Student's t quantile", () => {
  // scipy.stats.t.ppf(0.975, df) (scipy 1.x), printed with repr.
  const SCIPY: [number, number][] = [
    [1, 12.706204736432095],
    [2, 4.302652729911275],
    [2.5, 3.5746548420118773],
    [3.7, 2.8675207071912086],
    [4, 2.7764451051977987],
    [10, 2.2281388519649385],
    [30, 2.0422724563012373],
  ];
  test("matches scipy.stats.t.ppf(0.975, df), integer and not", () => {
    for (const [df, want] of SCIPY) close(studentTQuantile(0.975, df), want, 1e-9, `df=${df}`);
  });
  test("matches the closed forms of df = 1 and 2 to 1e-13", () => {
    // df=1 is Cauchy: tan(pi (p - 1/2)); df=2: t = (2p - 1) sqrt(2 / (4 p (1 - p))).
    close(studentTQuantile(0.975, 1), Math.tan(Math.PI * 0.475), 1e-13, "df=1");
    const p = 0.975;
    close(studentTQuantile(p, 2), (2 * p - 1) * Math.sqrt(2 / (4 * p * (1 - p))), 1e-13, "df=2");
  });
  test("is the inverse of the cdf, symmetric, and tends to the normal quantile", () => {
    for (const df of [1.3, 5, 17.5]) {
      for (const p of [0.6, 0.9, 0.975, 0.999]) {
        close(studentTCdf(studentTQuantile(p, df), df), p, 1e-12, `cdf(q(${p}), ${df})`);
        close(studentTQuantile(1 - p, df), -studentTQuantile(p, df), 1e-12, "symmetry");
      }
    }
    close(studentTQuantile(0.975, 1e7), 1.959963984540054, 1e-6, "normal limit");
    assert.ok(Number.isNaN(studentTQuantile(0.975, 0)));
  });
});

describe("log-scale relative difference and conclusions", () => {
  test("the Welch interval, computed step by step", () => {
    const a = [8, 8.3, 7.9];
    const b = [10, 10.4, 9.7];
    const r = logRelDiff(a, b);
    assert.ok(r && r.rel !== null && r.lo !== null && r.hi !== null && r.df !== null);
    const la = a.map(Math.log);
    const lb = b.map(Math.log);
    const d = mean(la) - mean(lb);
    const va = sampleSd(la) ** 2 / 3;
    const vb = sampleSd(lb) ** 2 / 3;
    const se = Math.sqrt(va + vb);
    const df = se ** 4 / (va ** 2 / 2 + vb ** 2 / 2);
    close(r.rel, Math.exp(d) - 1, 1e-15, "rel");
    close(r.df, df, 1e-12, "df");
    const t = studentTQuantile(0.975, df);
    close(r.lo, Math.exp(d - t * se) - 1, 1e-12, "lo");
    close(r.hi, Math.exp(d + t * se) - 1, 1e-12, "hi");
    assert.ok(r.hi < 0, "a clear win: the interval is below 0");
  });
  test("one seed: no interval; equal spreads of zero: a point interval; non-positive: none", () => {
    assert.deepEqual(logRelDiff([2], [1]), { rel: 1, lo: null, hi: null, df: null });
    assert.deepEqual(logRelDiff([2, 2], [1, 1]), { rel: 1, lo: 1, hi: 1, df: null });
    assert.deepEqual(logRelDiff([0, 1], [1, 1]), { rel: null, lo: null, hi: null, df: null });
  });
  test("the wording: lower, higher, a tie, one seed", () => {
    assert.equal(
      conclude("se", { rel: -0.2, lo: -0.25, hi: -0.15, df: 3 }),
      "se lower by 20.0% [15.0%, 25.0%]",
    );
    assert.equal(
      conclude("se", { rel: 0.3, lo: 0.1, hi: 0.5, df: 3 }),
      "se higher by 30.0% [10.0%, 50.0%]",
    );
    assert.equal(
      conclude("se", { rel: 0.02, lo: -0.1, hi: 0.15, df: 3 }),
      "no difference detectable at this budget (rel 2.0% [-10.0%, 15.0%])",
    );
    assert.equal(
      conclude("se", { rel: 0.5, lo: null, hi: null, df: null }),
      "one seed per arm: no interval, no conclusion",
    );
    assert.equal(
      conclude("se", { rel: null, lo: null, hi: null, df: null }),
      "a value <= 0: no relative difference",
    );
  });
  test("a metric's line: paired when the arms share seeds, else Welch, else no interval", () => {
    const arm = (seeds: number[], values: number[], prefix: string) =>
      seeds.map((seed, i) => ({
        seed,
        runId: `${prefix}${seed}`,
        metrics: { m: [{ step: 10, value: values[i] as number }] },
      }));
    const spec = [{ name: "m", better: "lower" as const }];
    const paired = metricLines(
      seedStats({ baseline: arm([0, 1], [10, 12], "b"), se: arm([0, 1], [9, 10.5], "s") }, spec, [
        ["se", "baseline"],
      ]),
    );
    assert.equal(paired[0]?.head, "m (lower is better), paired by seed (n=2)");
    assert.equal(paired[0]?.parts[0]?.basis, "paired");
    const unpaired = metricLines(
      seedStats({ baseline: arm([0, 1], [10, 12], "b"), se: arm([2, 3], [9, 10.5], "s") }, spec, [
        ["se", "baseline"],
      ]),
    );
    const welch = logRelDiff([9, 10.5], [10, 12]);
    assert.equal(unpaired[0]?.head, "m (lower is better)");
    assert.equal(unpaired[0]?.parts[0]?.basis, "welch");
    assert.equal(unpaired[0]?.parts[0]?.lo, welch?.lo);
    assert.match(
      unpaired[0]?.parts[0]?.text ?? "",
      /^se vs baseline: no detectable difference, -\d+\.\d% \[-\d+\.\d%, \+\d+\.\d%\] \(unpaired: the arms share too few seeds\)$/,
    );
    const one = metricLines(
      seedStats({ baseline: arm([0], [4], "b"), se: arm([0], [3], "s") }, spec, [
        ["se", "baseline"],
      ]),
    );
    assert.equal(
      one[0]?.text,
      "m (lower is better): se vs baseline: no interval: one seed per arm, -25.0% (final se 3; baseline 4). " +
        "Steps to reach the baseline's final mean (4): se in 1 of 1 seeds, first at step 10.",
    );
    assert.equal(one[0]?.parts[0]?.verdict, null);
  });

  test("steps_to_reach: each seed's first eval step at the baseline's final mean", () => {
    const s = (pairs: [number, number][]) => pairs.map(([step, value]) => ({ step, value }));
    const stats = seedStats(
      {
        baseline: [
          {
            seed: 0,
            runId: "b0",
            metrics: {
              m: s([
                [0, 10],
                [100, 6],
                [200, 4],
              ]),
            },
          },
          {
            seed: 1,
            runId: "b1",
            metrics: {
              m: s([
                [0, 10],
                [100, 5],
                [200, 6],
              ]),
            },
          },
        ],
        se: [
          {
            seed: 0,
            runId: "s0",
            metrics: {
              m: s([
                [0, 9],
                [100, 5],
                [200, 3],
              ]),
            },
          },
          {
            seed: 1,
            runId: "s1",
            metrics: {
              m: s([
                [0, 9],
                [100, 6],
                [200, 4.5],
              ]),
            },
          },
          {
            seed: 2,
            runId: "s2",
            metrics: {
              m: s([
                [0, 9],
                [100, 8],
                [200, 7],
                [300, 1],
              ]),
            },
          },
        ],
      },
      [{ name: "m", better: "lower" }],
      [["se", "baseline"]],
    );
    const se = stats.arms.se?.metrics.m;
    assert.deepEqual(se?.steps, [0, 100, 200], "only the steps every seed has");
    assert.deepEqual(se?.final.values, [3, 4.5, 7]);
    // s2 reaches it at step 300, a step the other seeds do not have (its own history counts).
    assert.deepEqual(se?.steps_to_reach, { target: 5, seeds: 3, reached: 3, mean: 200, sd: 100 });
    assert.deepEqual(stats.arms.baseline?.metrics.m?.steps_to_reach, {
      target: 5,
      seeds: 2,
      reached: 2,
      mean: 150,
      sd: sampleSd([100, 200]),
    });
    const one = seedStats(
      { baseline: [{ seed: 0, runId: "b", metrics: { m: s([[0, 4]]) } }], se: [] },
      [{ name: "m", better: "lower" }],
    );
    assert.deepEqual(
      Object.keys(one.arms.se?.metrics ?? {}),
      [],
      "an arm without seeds has no stats",
    );
    assert.deepEqual(one.comparisons, []);
  });
});

describe("the grid fixture through the registry", () => {
  let parent: string;
  let db: Db;
  let grid: Grid;

  before(() => {
    parent = tempDir("run-stats");
    db = openDb(join(parent, "diffusable.sqlite"));
    for (const arm of ["baseline", "se", "se-spatial"]) {
      for (const seed of [0, 1, 2]) importRunFolder(db, join(GRID_RUNS_DIR, runId(arm, seed)));
    }
    grid = buildGrid(storeRunReader(db));
  });
  after(() => {
    if (db) closeDb(db);
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  test("the committed fixture is what the generator writes", () => {
    const dir = join(parent, "regenerated");
    for (const id of writeGridFixture(dir)) {
      assert.equal(
        readFileSync(join(dir, id, "events.jsonl"), "utf8"),
        readFileSync(join(GRID_RUNS_DIR, id, "events.jsonl"), "utf8"),
        id,
      );
    }
  });

  test("one experiment group, three arms of three seeds, the stats by hand", () => {
    const groups = diffusionGroups(storeRunReader(db));
    assert.deepEqual(
      groups.map((g) => g.key),
      ["experiment:grid-fixture"],
    );
    assert.equal(grid.group?.experiment, "grid-fixture");
    assert.deepEqual(Object.keys(grid.stats.arms), ["baseline", "se", "se-spatial"]);
    assert.equal(grid.numClasses, 17);
    for (const [arm, metrics] of Object.entries(FINALS)) {
      const a = grid.stats.arms[arm];
      assert.deepEqual(a?.seeds, [0, 1, 2]);
      for (const [metric, values] of Object.entries(metrics)) {
        const m: MetricStats | undefined = a?.metrics[metric];
        assert.deepEqual(m?.steps, [0, 100, 200, 300], `${arm} ${metric}`);
        assert.deepEqual(m?.final.values, values);
        close(m?.final.mean as number, mean(values), 1e-15, `${arm} ${metric} mean`);
        close(m?.final.sd as number, sampleSd(values), 1e-15, `${arm} ${metric} sd`);
        const at100 = [0, 1, 2].map((seed) => valueAt(arm, metric, seed, 100));
        close(m?.mean[1] as number, mean(at100), 1e-15, "mean at 100");
        assert.equal(m?.min[1], Math.min(...at100));
        assert.equal(m?.max[1], Math.max(...at100));
      }
    }
    // se reaches the baseline's final mean fd_rand3d at 300 (seed 0) and 200 (seeds 1, 2).
    assert.deepEqual(grid.stats.arms.se?.metrics.fd_rand3d?.steps_to_reach, {
      target: mean(FINALS.baseline?.fd_rand3d as number[]),
      seeds: 3,
      reached: 3,
      mean: (300 + 200 + 200) / 3,
      sd: sampleSd([300, 200, 200]),
    });
    const line = (metric: string, a: string, b: string) =>
      grid.summary.lines.find((l) => l.metric === metric && l.a === a && l.b === b);
    assert.match(line("fd_rand3d", "se", "baseline")?.text ?? "", /: se lower by \d+\.\d% \[/);
    assert.equal(line("fd_rand3d", "se", "baseline")?.verdict, "a");
    assert.match(
      line("fd_cls3d", "se", "baseline")?.text ?? "",
      /: no difference detectable at this budget \(rel -?\d+\.\d% \[-\d+\.\d%, \d+\.\d%\]\)$/,
    );
    assert.equal(line("fd_cls3d", "se", "baseline")?.verdict, null);
    assert.match(line("class_score", "se", "baseline")?.text ?? "", /: se higher by /);
    assert.equal(line("class_score", "se", "baseline")?.verdict, "a");
    // lfd (decoder-free) is summarised like the others: the fixture's se is ~30% lower
    assert.match(
      line("lfd", "se", "baseline")?.text ?? "",
      /^lfd \(lower is better\).*: se lower by /,
    );
    assert.equal(line("lfd", "se", "baseline")?.verdict, "a");
    assert.equal(grid.summary.lines.length, 5 * 3, "five metrics, three comparisons");
  });

  test("the charts: per metric the arms relative to the baseline, then a band per arm", () => {
    assert.deepEqual(
      grid.charts.map((c) => [c.id, c.kind]),
      ["fd_cls3d", "fd_rand3d", "lfd", "class_score", "val_loss"].flatMap((m) => [
        [`${m}-relative`, "relative"],
        [m, "absolute"],
      ]),
    );
    for (const c of grid.charts) {
      assert.deepEqual(c.reference, c.kind === "relative" ? { value: 0, label: "baseline" } : null);
    }
    const cs = grid.charts.find((c) => c.id === "class_score");
    assert.deepEqual(cs?.chance, { value: 1 / 17, label: "chance (1/17)" });
    assert.equal(grid.charts.find((c) => c.id === "fd_rand3d")?.chance, null);
    const fd = grid.charts.find((c) => c.id === "fd_rand3d");
    const se = fd?.series.find((s) => s.arm === "se");
    const m = grid.stats.arms.se?.metrics.fd_rand3d;
    assert.deepEqual(
      se?.points.map((p) => p[0]),
      [0, 100, 200, 300],
    );
    const last = se?.points.at(-1) as number[];
    assert.equal(last[1], m?.final.mean);
    assert.equal(last[2], (m?.final.mean as number) - (m?.final.sd as number));
    assert.equal(last[3], (m?.final.mean as number) + (m?.final.sd as number));
  });

  test("the summary: one line per metric, its comparisons paired by seed", () => {
    const lines = grid.summary.metrics;
    assert.deepEqual(
      lines.map((l) => l.metric),
      ["fd_cls3d", "fd_rand3d", "lfd", "class_score", "val_loss"],
    );
    for (const l of lines) {
      const cs = grid.stats.comparisons.filter((c) => c.metric === l.metric);
      assert.deepEqual(
        l.parts.map((p) => `${p.a} vs ${p.b}`),
        cs.map((c) => `${c.a} vs ${c.b}`),
      );
      for (const [i, p] of l.parts.entries()) {
        const c = cs[i] as (typeof cs)[number];
        assert.equal(p.basis, "paired", `${l.metric} ${p.a} vs ${p.b}`);
        assert.equal(p.n, 3);
        assert.deepEqual([p.rel, p.lo, p.hi], [c.paired.rel, c.paired.lo, c.paired.hi]);
        assert.equal(p.verdict, verdict({ lo: c.paired.lo, hi: c.paired.hi, better: c.better }));
        assert.equal(p.text, `${p.a} vs ${p.b}: ${p.word}${p.detail}`);
      }
      assert.equal(
        l.text,
        `${l.head}: ${l.parts.map((p) => p.text).join("; ")}.${l.reachText ? ` ${l.reachText}.` : ""}`,
      );
    }
    // fd_rand3d se vs baseline by hand: d_k = ln se_k - ln baseline_k, a t interval on mean(d).
    const se = FINALS.se?.fd_rand3d as number[];
    const base = FINALS.baseline?.fd_rand3d as number[];
    const d = se.map((v, k) => Math.log(v) - Math.log(base[k] as number));
    const half = studentTQuantile(0.975, 2) * (sampleSd(d) / Math.sqrt(3));
    const pct = (v: number) => `${v < 0 ? "" : "+"}${(100 * v).toFixed(1)}%`;
    const [rel, lo, hi] = [0, -half, half].map((h) => Math.exp(mean(d) + h) - 1) as number[];
    assert.ok((hi as number) < 0, "the fixture's fd_rand3d win is detectable paired by seed");
    const fd = lines.find((l) => l.metric === "fd_rand3d");
    assert.equal(
      fd?.parts[0]?.text,
      `se vs baseline: se better, ${pct(rel as number)} [${pct(lo as number)}, ${pct(hi as number)}]`,
    );
    assert.equal(
      fd?.text,
      "fd_rand3d (lower is better), paired by seed (n=3): se vs baseline: se better, -19.6% [-21.8%, -17.3%]; " +
        "se vs se-spatial: se better, -11.3% [-14.3%, -8.3%]; se-spatial vs baseline: se-spatial better, " +
        "-9.3% [-11.0%, -7.6%]. Steps to reach the baseline's final mean (10.03): se in 3 of 3 seeds, " +
        "first at step 233 ± 58; se-spatial in 3 of 3 seeds, first at step 267 ± 58.",
    );
    assert.equal(
      lines.find((l) => l.metric === "class_score")?.parts[0]?.text,
      "se vs baseline: se better, +28.8% [+20.5%, +37.7%]",
      "higher is better: a higher score is a win",
    );
    assert.match(
      lines.find((l) => l.metric === "fd_cls3d")?.parts[0]?.text ?? "",
      /^se vs baseline: no detectable difference, -0\.0% \[-\d+\.\d%, \+\d+\.\d%\]$/,
    );
  });

  test("the relative charts: paired by seed at every step, ending at the summary's figure", () => {
    const seeds = (arm: string) =>
      [0, 1, 2].map((seed) => ({
        seed,
        runId: runId(arm, seed),
        metrics: {
          fd_rand3d: [0, 100, 200, 300].map((step) => ({
            step,
            value: valueAt(arm, "fd_rand3d", seed, step),
          })),
        },
      }));
    const curve = pairedCurve(seeds("se"), seeds("baseline"), "fd_rand3d");
    const chart = grid.charts.find((c) => c.id === "fd_rand3d-relative");
    const series = chart?.series.find((s) => s.arm === "se");
    assert.equal(series?.label, "se vs baseline (3 paired seeds)");
    assert.deepEqual(
      series?.points,
      curve.map((p) => [
        p.step,
        100 * (p.rel as number),
        100 * (p.lo as number),
        100 * (p.hi as number),
      ]),
    );
    for (const p of curve) {
      const at = (arm: string) =>
        new Map([0, 1, 2].map((k) => [k, valueAt(arm, "fd_rand3d", k, p.step)] as const));
      assert.deepEqual(p, { ...pairedLogRelDiff(at("se"), at("baseline")), step: p.step });
    }
    const last = series?.points.at(-1) as number[];
    const part = grid.summary.metrics
      .find((l) => l.metric === "fd_rand3d")
      ?.parts.find((p) => p.a === "se" && p.b === "baseline");
    assert.deepEqual(
      last.slice(1),
      [part?.rel, part?.lo, part?.hi].map((v) => 100 * (v as number)),
    );
  });

  test("diffusable.experiments.seed_stats (Python) gives the same numbers and conclusions", () => {
    const res = spawnSync(
      PYTHON,
      ["-m", "diffusable.experiments.seed_stats", "--runs", GRID_RUNS_DIR, "--json", "-"],
      {
        cwd: REPO_ROOT,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, PYTHONPATH: join(REPO_ROOT, "src/training") },
      },
    );
    assert.equal(
      res.status,
      0,
      `python -m diffusable.experiments.seed_stats failed (does src/training/diffusable/experiments/seed_stats.py exist?): ${res.error?.message ?? ""}\n${res.stderr}`,
    );
    const py = JSON.parse(res.stdout) as SeedStats;
    const ts = grid.stats;
    // one list in two languages: the same metrics, the same way better, the same order
    const listed = spawnSync(
      PYTHON,
      [
        "-c",
        "import json; from diffusable.experiments.seed_stats import METRICS; print(json.dumps(list(METRICS.items())))",
      ],
      {
        cwd: REPO_ROOT,
        encoding: "utf8",
        env: { ...process.env, PYTHONPATH: join(REPO_ROOT, "src/training") },
      },
    );
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(
      JSON.parse(listed.stdout),
      SEED_METRICS.map((m) => [m.name, m.better]),
    );
    assert.deepEqual(Object.keys(py.arms).sort(), Object.keys(ts.arms).sort());
    const num = (a: unknown, b: unknown, what: string) => {
      if (b === null || b === undefined) return assert.equal(a ?? null, null, what);
      assert.equal(typeof a, "number", `${what}: Python gives ${JSON.stringify(a)}`);
      close(a as number, b as number, 1e-9, what);
    };
    const arr = (a: unknown, b: readonly number[], what: string) => {
      assert.ok(Array.isArray(a), `${what}: not an array`);
      assert.equal(a.length, b.length, `${what}: length`);
      for (const [i, v] of b.entries()) num(a[i], v, `${what}[${i}]`);
    };
    for (const [arm, t] of Object.entries(ts.arms)) {
      const p = py.arms[arm] as SeedStats["arms"][string];
      assert.deepEqual(p.seeds, t.seeds, `${arm} seeds`);
      assert.deepEqual(Object.keys(p.metrics).sort(), Object.keys(t.metrics).sort(), arm);
      for (const [metric, m] of Object.entries(t.metrics)) {
        const q = p.metrics[metric] as (typeof t.metrics)[string];
        const what = `${arm} ${metric}`;
        assert.deepEqual(q.steps, m.steps, `${what} steps`);
        for (const k of ["mean", "sd", "min", "max"] as const) arr(q[k], m[k], `${what} ${k}`);
        num(q.final.mean, m.final.mean, `${what} final.mean`);
        num(q.final.sd, m.final.sd, `${what} final.sd`);
        assert.equal(q.final.n, m.final.n, `${what} final.n`);
        arr(q.final.values, m.final.values, `${what} final.values`);
        const r = m.steps_to_reach;
        const qr = q.steps_to_reach;
        if (r === null) assert.equal(qr ?? null, null, `${what} steps_to_reach`);
        else {
          num(qr?.target, r.target, `${what} steps_to_reach.target`);
          assert.equal(qr?.reached, r.reached, `${what} steps_to_reach.reached`);
          num(qr?.mean, r.mean, `${what} steps_to_reach.mean`);
          num(qr?.sd, r.sd, `${what} steps_to_reach.sd`);
        }
      }
    }
    const key = (c: { a: string; b: string; metric: string }) => `${c.metric}: ${c.a} vs ${c.b}`;
    assert.deepEqual(py.comparisons.map(key).sort(), ts.comparisons.map(key).sort());
    for (const c of ts.comparisons) {
      const p = py.comparisons.find((x) => key(x) === key(c));
      for (const k of ["rel", "lo", "hi", "df"] as const) num(p?.[k], c[k], `${key(c)} ${k}`);
      const pp = (p as { paired?: Record<string, unknown> } | undefined)?.paired;
      for (const k of ["rel", "lo", "hi", "df", "n"] as const) {
        num(pp?.[k], c.paired[k], `${key(c)} paired ${k}`);
      }
      assert.equal(pp?.conclusion, c.paired.conclusion, `${key(c)} paired conclusion`);
      assert.equal(p?.conclusion, c.conclusion, `${key(c)} conclusion`);
    }
  });
});

describe("continued runs through the registry", () => {
  // A run continued with --init from another run's checkpoint is a later stage of it, not a
  // second seed: the shipped `medium` pair went on three times (seeds 1, 2, 3), and counting the
  // stages as seeds showed a spread and a paired "verdict" that no seed grid made.
  let parent: string;
  const dbs: Db[] = [];

  /** A diffusion run folder with one config event and one eval (t: seconds since the epoch),
   * imported into db. */
  function writeRun(db: Db, id: string, t: number, arm: string, extra: object) {
    const dir = join(parent, `runs-${dbs.indexOf(db)}`, id);
    mkdirSync(dir, { recursive: true });
    const config = {
      ...{ type: "config", time: t, step: 0, run_id: id, kind: "diffusion" },
      ...{ model: { name: "medium" }, autoencoder: { variant: arm } },
      ...extra,
    };
    const ev = { type: "eval", time: t + 1, step: 100, fd_cls3d: 14, fd_rand3d: 9, val_loss: 0.7 };
    writeFileSync(join(dir, "events.jsonl"), `${JSON.stringify(config)}\n${JSON.stringify(ev)}\n`);
    importRunFolder(db, dir);
  }

  /** A registry with three stages of one run per arm (seeds 1, 2, 3, each continuing the last)
   * and an older experiment of two seeds in `gridArms`. */
  function registry(gridArms: string[]): Db {
    const db = openDb(join(parent, `registry-${dbs.length}.sqlite`));
    dbs.push(db);
    for (const arm of gridArms) {
      for (const seed of [0, 1]) {
        writeRun(db, `grid-${arm}-s${seed}`, 1000 + seed, arm, {
          experiment: "g",
          train: { steps: 300, seed },
        });
      }
    }
    for (const arm of ["baseline", "se"]) {
      writeRun(db, `${arm}-1`, 2000, arm, { train: { steps: 20000, seed: 1 } });
      for (const stage of [2, 3]) {
        writeRun(db, `${arm}-${stage}`, 1000 * (stage + 1), arm, {
          train: { steps: 20000, seed: stage },
          init: { run_id: `${arm}-${stage - 1}`, step: 100 },
        });
      }
    }
    return db;
  }

  before(() => {
    parent = tempDir("run-stages");
  });
  after(() => {
    for (const db of dbs) closeDb(db);
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  test("only the last stage of a continued run stays in its group", () => {
    const groups = diffusionGroups(storeRunReader(registry(["baseline", "se"])));
    assert.deepEqual(
      groups.map((g) => [g.key, g.runs.map((r) => r.run.id).sort()]),
      [
        ["model:medium:20000", ["baseline-3", "se-3"]],
        ["experiment:g", ["grid-baseline-s0", "grid-baseline-s1", "grid-se-s0", "grid-se-s1"]],
      ],
    );
  });

  test("by default the view is the newest group whose arms share two seeds, else the newest pair", () => {
    const both = storeRunReader(registry(["baseline", "se"]));
    assert.equal(buildGrid(both).group?.key, "experiment:g");
    assert.equal(buildGrid(both, "model:medium:20000").group?.key, "model:medium:20000");
    // an experiment of one arm is no comparison: the newest pair is shown
    assert.equal(
      buildGrid(storeRunReader(registry(["baseline"]))).group?.key,
      "model:medium:20000",
    );
  });

  test("the autoencoders shown are the group's arms, not another experiment's", () => {
    // A baseline/se-spatial grid beside an `se` autoencoder of another experiment: the page
    // listed "se: 0 seeds" with that autoencoder (the shipped grid-gpu-stage2 on first start).
    const db = registry(["baseline", "se-spatial"]);
    const dir = join(parent, "ae-se");
    mkdirSync(dir, { recursive: true });
    const config = { type: "config", time: 500, step: 0, run_id: "ae-se", kind: "autoencoder" };
    const val = { type: "val", time: 501, step: 10, psnr: 24 };
    writeFileSync(
      join(dir, "events.jsonl"),
      `${JSON.stringify({ ...config, variant: "se" })}\n${JSON.stringify(val)}\n`,
    );
    importRunFolder(db, dir);
    const grid = buildGrid(storeRunReader(db), "experiment:g");
    assert.deepEqual(
      grid.arms.map((a) => a.arm),
      ["baseline", "se-spatial"],
    );
  });

  test("two runs are compared on fd_cls3d when both have it (FD_METRICS), not on fd_rand3d", () => {
    const reader = storeRunReader(registry([]));
    const fd = buildComparison(reader, "baseline-3", "se-3").charts.find((c) => c.id === "fd");
    assert.equal(fd?.title, "fd_cls3d against diffusion steps (lower is better)");
    assert.deepEqual(FD_METRICS, ["eval/fvd_i3d", "eval/fd_cls3d", "eval/fd_rand3d"]);
  });
});

describe("the reconstruction/diffusion trade-off across latent-channel counts", () => {
  // Issue 21, part 5: one point per arm's autoencoder at (its val PSNR, the final fd_cls3d of the
  // denoisers on its latents), for the shown group and the same recipe at other channel counts;
  // a fine-tuned autoencoder no group has used yet is a point without diffusion.
  let parent: string;
  let db: Db;

  function write(id: string, lines: object[]) {
    const dir = join(parent, "runs", id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "events.jsonl"), `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
    importRunFolder(db, dir);
  }

  /** An autoencoder run; a fine-tune names its pre-train in `init`, a pre-train says "scratch". */
  function ae(id: string, t: number, channels: number, variant: string, psnr: number, init = true) {
    const model = { name: `conv-${channels}`, latent_channels: channels, architecture: "conv" };
    write(id, [
      {
        ...{ type: "config", time: t, step: 0, run_id: id, kind: "autoencoder", variant, model },
        init: init ? { run_id: `pre-${channels}`, step: 100 } : "scratch",
      },
      { type: "val", time: t + 1, step: 50, psnr },
    ]);
  }

  function dit(
    id: string,
    t: number,
    aeId: string,
    arm: string,
    channels: number,
    seed: number,
    experiment = `grid-${channels}`,
  ) {
    const fd = (channels === 64 ? 20 : 10) + (arm === "se" ? -1 : 0) + seed;
    write(id, [
      {
        ...{ type: "config", time: t, step: 0, run_id: id, kind: "diffusion" },
        experiment,
        model: { name: "compact", latent_channels: channels },
        train: { steps: 300, batch_size: 32, seed },
        autoencoder: { run_id: aeId, variant: arm },
      },
      { type: "eval", time: t + 1, step: 100, fd_cls3d: fd + 5 },
      { type: "eval", time: t + 2, step: 300, fd_cls3d: fd },
    ]);
  }

  before(() => {
    parent = tempDir("trade-off");
    db = openDb(join(parent, "registry.sqlite"));
    ae("pre-16", 100, 16, "baseline", 20, false); // a pre-train: no arm
    ae("ae16-baseline", 200, 16, "baseline", 24);
    ae("ae16-se", 210, 16, "se", 23.5);
    ae("ae64-baseline", 300, 64, "baseline", 27);
    ae("ae64-se", 310, 64, "se", 26.5);
    ae("ae64-se-half", 320, 64, "se", 26.4);
    ae("ae32-se", 400, 32, "se", 25); // fine-tuned, no diffusion yet
    write("pca8", [
      {
        ...{ type: "config", time: 450, step: 0, run_id: "pca8", kind: "autoencoder" },
        ...{ variant: "se", init: { run_id: "x", step: 1 } },
        model: { name: "small", latent_channels: 8, architecture: "pca" },
      },
      { type: "val", time: 451, step: 10, psnr: 30 },
    ]);
    for (const seed of [0, 1]) {
      for (const arm of ["baseline", "se"]) {
        dit(`d16-${arm}-s${seed}`, 1000 + seed, `ae16-${arm}`, arm, 16, seed);
        dit(`d64-${arm}-s${seed}`, 900 + seed, `ae64-${arm}`, arm, 64, seed);
      }
      // newer, same recipe and channels, one arm (another SE weight): no comparison of its own
      dit(`d64-half-s${seed}`, 1100 + seed, "ae64-se-half", "se", 64, seed, "grid-64-half");
      // newer, same recipe at 16 channels, two arms but not the shown ones (a control experiment)
      for (const arm of ["baseline", "se-spatial"]) {
        dit(`d16c-${arm}-s${seed}`, 1200 + seed, `ae16-${arm}`, arm, 16, seed, "control-16");
      }
    }
    // the 64-channel latents under another recipe (more steps): not beside the 300-step grid
    write("d64-long", [
      {
        ...{ type: "config", time: 800, step: 0, run_id: "d64-long", kind: "diffusion" },
        experiment: "long-64",
        model: { name: "compact", latent_channels: 64 },
        train: { steps: 9000, batch_size: 32, seed: 0 },
        autoencoder: { run_id: "ae64-baseline", variant: "baseline" },
      },
      { type: "eval", time: 801, step: 9000, fd_cls3d: 3 },
    ]);
  });
  after(() => {
    if (db) closeDb(db);
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  test("the shown group, its recipe at 64 channels and the 32-channel autoencoder alone", () => {
    const t = buildGrid(storeRunReader(db), "experiment:grid-16").tradeOff;
    assert.equal(t.metric, "fd_cls3d");
    const rows = t.points.map((p) => [p.channels, p.arm, p.autoencoder, p.psnr, p.fd?.mean]);
    assert.deepEqual(rows, [
      [16, "baseline", "ae16-baseline", 24, 10.5],
      [16, "se", "ae16-se", 23.5, 9.5],
      [64, "baseline", "ae64-baseline", 27, 20.5],
      [64, "se", "ae64-se", 26.5, 19.5],
      [32, "se", "ae32-se", 25, undefined],
    ]);
    const p = t.points[0];
    assert.equal(p?.fd?.n, 2);
    assert.equal(p?.fd?.step, 300);
    close(p?.fd?.sd ?? Number.NaN, Math.SQRT1_2, 1e-12, "sd of 10 and 11");
    assert.equal(t.points[4]?.group, null);
    assert.equal(t.points[2]?.group, "grid-64");
  });

  test("from the 64-channel group the 16-channel one stands beside it, not the long run", () => {
    const t = buildGrid(storeRunReader(db), "experiment:grid-64").tradeOff;
    assert.deepEqual(
      t.points.map((p) => `${p.channels}:${p.arm}:${p.group}`),
      [
        "64:baseline:grid-64",
        "64:se:grid-64",
        "16:baseline:grid-16",
        "16:se:grid-16",
        "32:se:null",
      ],
    );
    // no 16-channel group has the long recipe: its autoencoders stand alone there, newest first
    const long = buildGrid(storeRunReader(db), "experiment:long-64").tradeOff;
    assert.deepEqual(
      long.points.map((p) => `${p.channels}:${p.arm}:${p.fd?.mean}`),
      ["64:baseline:3", "32:se:undefined", "16:se:undefined", "16:baseline:undefined"],
    );
  });

  test("the autoencoder evaluation's PSNRs and linear codes once every point has one", () => {
    // ae_eval's clips (136) are not the trainer's val clips (80): one source for all points.
    const evaluate = (id: string, psnr: number, linear: number) => {
      const line = { type: "ae_eval", time: 2000, step: 50 };
      const procedural_val = { psnr, ssim: 0.7, psnr_linear_code: linear, clips: 136 };
      appendFileSync(
        join(parent, "runs", id, "events.jsonl"),
        `${JSON.stringify({ ...line, procedural_val })}\n`,
      );
      importRunFolder(db, join(parent, "runs", id));
    };
    const view = () => buildGrid(storeRunReader(db), "experiment:grid-16").tradeOff;
    assert.equal(view().psnrFrom, "val");
    assert.deepEqual(
      view().points.map((p) => p.linear),
      [null, null, null, null, null],
    );
    evaluate("ae16-baseline", 24.2, 22.5);
    evaluate("ae16-se", 23.9, 22.5);
    evaluate("ae64-baseline", 26.1, 27.0);
    evaluate("ae64-se", 25.8, 27.0);
    assert.equal(view().psnrFrom, "val", "ae32-se has no ae_eval yet");
    assert.equal(view().points[0]?.psnr, 24);
    evaluate("ae32-se", 25.5, 24.9);
    const t = view();
    assert.equal(t.psnrFrom, "ae_eval");
    assert.deepEqual(
      t.points.map((p) => [p.autoencoder, p.psnr, p.linear]),
      [
        ["ae16-baseline", 24.2, 22.5],
        ["ae16-se", 23.9, 22.5],
        ["ae64-baseline", 26.1, 27.0],
        ["ae64-se", 25.8, 27.0],
        ["ae32-se", 25.5, 24.9],
      ],
    );
  });
});
