// The admin page: reads /admin/api (session cookie), draws the experiment view (arms over seeds:
// SVG charts of the mean per arm with a mean ± sd band, the summary's conclusions, the arms'
// autoencoders) and the comparison of two runs with uPlot (served from node_modules), and makes
// sample videos of both runs' bundles. Plain ES module, no build step.
// Each uPlot chart's <figure> carries what it actually drew: data-series (count), data-labels
// (JSON) and data-points (JSON, non-null points per series), read back from the uPlot instance.
// Each SVG band chart draws one <path data-arm data-kind="band|mean" data-points> per arm and a
// <line data-kind="chance"> on the class score.

import uPlot from "/admin/vendor/uplot/uPlot.esm.js";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#2457c5", "#e0711a", "#1b9e5a", "#8e44ad"];
/** One colour per arm, the same on every chart and table. */
const ARM_COLORS = { baseline: "#2457c5", se: "#e0711a", "se-spatial": "#1b9e5a" };
const armColor = (arm, i = 0) => ARM_COLORS[arm] ?? COLORS[(3 + i) % COLORS.length];
const SVG_NS = "http://www.w3.org/2000/svg";
const charts = new Map();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function setStatus(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

async function api(path, init = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...init });
  if (res.status === 401) {
    window.location.assign("/admin");
    throw new Error("signed out");
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(body?.error?.message ?? `${res.status} ${res.statusText}`);
    err.code = body?.error?.code ?? String(res.status);
    throw err;
  }
  return body;
}

const fmt = (v, digits = 3) =>
  v === null || v === undefined
    ? "–"
    : Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0)
      ? v.toExponential(2)
      : v.toFixed(digits);

// ---- runs ----------------------------------------------------------------------------------

function renderRuns(runs, selected) {
  const table = $("#runs");
  table.replaceChildren(
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["run", "kind", "variant", "status", "steps", "AE run", "final"].map((h) =>
          el("th", { scope: "col" }, h),
        ),
      ),
    ),
  );
  const body = el("tbody");
  for (const r of runs) {
    const tr = el(
      "tr",
      { "data-run": r.id },
      el("td", {}, r.id),
      el("td", {}, r.kind),
      el("td", {}, r.variant ?? "–"),
      el("td", {}, r.status),
      el("td", { class: "num" }, r.steps === null ? "–" : String(r.steps)),
      el("td", {}, r.autoencoderRunId ?? "–"),
      el("td", { class: "num" }, r.final ? `${r.final.name} ${fmt(r.final.value)}` : "–"),
    );
    if (selected.includes(r.id)) tr.classList.add("selected");
    body.append(tr);
  }
  table.append(body);
  for (const id of ["#pick-a", "#pick-b"]) {
    const select = $(id);
    select.replaceChildren(
      ...runs.map((r) => el("option", { value: r.id }, `${r.id} (${r.kind}, ${r.variant ?? "?"})`)),
    );
  }
}

// ---- charts --------------------------------------------------------------------------------

/** uPlot wants one x array and aligned y arrays (null where a series has no point). */
function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of s.points) y[index.get(x)] = v;
    return y;
  });
  return [xs, ...ys];
}

function plotSize(container) {
  const width = Math.max(240, container.clientWidth);
  return { width, height: width < 500 ? 220 : 260 };
}

function drawChart(spec, container = "#charts") {
  const fig = el("figure", { class: "chart", id: `chart-${spec.id}`, "data-chart": spec.id });
  const plot = el("div", { class: "plot" });
  fig.append(el("figcaption", {}, spec.title), plot);
  if (spec.note) fig.append(el("p", { class: "note" }, spec.note));
  $(container).append(fig);
  const data = align(spec.series);
  const sparse = spec.series.some((s) => s.points.length <= 20);
  const opts = {
    ...plotSize(plot),
    scales: { x: { time: false }, y: spec.y.log ? { distr: 3, log: 10 } : {} },
    axes: [
      { label: spec.x.label, size: 40 },
      { label: spec.y.label, size: 60 },
    ],
    series: [
      { label: spec.x.label },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke:
          ARM_COLORS[s.key] ??
          ARM_COLORS[s.key?.replace(/_latent$/, "")] ??
          COLORS[i % COLORS.length],
        width: 2,
        spanGaps: true,
        points: { show: sparse, size: 6 },
        value: (_u, v) => fmt(v),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  const u = new uPlot(opts, data, plot);
  charts.set(spec.id, u);
  fig.dataset.series = String(u.series.length - 1);
  fig.dataset.labels = JSON.stringify(u.series.slice(1).map((s) => s.label));
  fig.dataset.points = JSON.stringify(
    u.data.slice(1).map((ys) => ys.filter((v) => v !== null && v !== undefined).length),
  );
  fig.dataset.log = String(spec.y.log);
  return fig;
}

const resize = new ResizeObserver(() => {
  for (const [id, u] of charts) {
    const plot = document.querySelector(`#chart-${id} .plot`);
    if (plot) u.setSize(plotSize(plot));
  }
});

function clearCharts() {
  for (const u of charts.values()) u.destroy();
  charts.clear();
  for (const id of ["#charts", "#grid-charts", "#ae-charts"]) $(id).replaceChildren();
}

/** The pair's charts, but those the experiment view already draws for the three arms. */
function renderComparison(cmp, skip = new Set()) {
  const name = (s) => s.diffusion?.id ?? s.autoencoder?.id ?? "?";
  $("#pick-a").value = name(cmp.a);
  $("#pick-b").value = name(cmp.b);
  const describe = (s) =>
    s.diffusion ? `${s.diffusion.id} (AE ${s.autoencoder?.id ?? "?"})` : (s.autoencoder?.id ?? "?");
  $("#pair").textContent = `a: ${describe(cmp.a)} · b: ${describe(cmp.b)}`;
  $("#warnings").replaceChildren(...cmp.warnings.map((w) => el("li", {}, w)));
  $("#summary").replaceChildren(...cmp.summary.sentences.map((s) => el("li", {}, s)));
  for (const spec of cmp.charts) {
    if (!skip.has(spec.id)) drawChart(spec);
  }
  resize.disconnect();
  resize.observe($("#charts"));
  resize.observe($("#ae-charts"));
  renderSampleSetup(cmp);
}

// ---- experiment: arms over seeds ------------------------------------------------------------

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c);
  return node;
}

/** Round tick values covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

/** A chart of each arm's mean over seeds with its band (mean ± sd), and the chance line. */
function drawBandChart(spec) {
  const fig = el("figure", {
    class: "chart band-chart",
    id: `grid-chart-${spec.id}`,
    "data-chart": spec.id,
    "data-band": spec.band,
  });
  fig.append(el("figcaption", {}, spec.title));
  const W = 640;
  const H = 280;
  const m = { l: 58, r: 14, t: 12, b: 40 };
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = spec.series.flatMap((s) => s.points.flatMap((p) => [p[2], p[3]]));
  if (spec.chance) ys.push(spec.chance.value);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  let y0 = Math.min(...ys);
  let y1 = Math.max(...ys);
  const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.1 || 1;
  y0 -= pad;
  y1 += pad;
  const X = (x) => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const Y = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const pt = (x, y) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "band-plot",
    role: "img",
    "aria-label": spec.title,
  });
  const grid = svg("g", { class: "axes" });
  for (const v of ticks(y0, y1)) {
    grid.append(
      svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: "grid" }),
      svg("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, fmt(v)),
    );
  }
  for (const v of ticks(x0, x1, 6)) {
    grid.append(
      svg("line", { x1: X(v), x2: X(v), y1: H - m.b, y2: H - m.b + 4, class: "tick" }),
      svg("text", { x: X(v), y: H - m.b + 16, "text-anchor": "middle" }, String(Math.round(v))),
    );
  }
  grid.append(
    svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }),
    svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }),
    svg("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, spec.x.label),
    svg(
      "text",
      {
        x: 12,
        y: (m.t + H - m.b) / 2,
        transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})`,
        "text-anchor": "middle",
      },
      spec.y.label,
    ),
  );
  root.append(grid);
  spec.series.forEach((s, i) => {
    const color = armColor(s.arm, i);
    const upper = s.points.map((p) => pt(p[0], p[3]));
    const lower = s.points.map((p) => pt(p[0], p[2])).reverse();
    root.append(
      svg("path", {
        d: `M${[...upper, ...lower].join("L")}Z`,
        fill: color,
        "fill-opacity": 0.16,
        stroke: "none",
        "data-arm": s.arm,
        "data-kind": "band",
        "data-points": s.points.length,
      }),
    );
  });
  spec.series.forEach((s, i) => {
    const color = armColor(s.arm, i);
    const g = svg("g", { "data-arm": s.arm });
    g.append(
      svg("path", {
        d: `M${s.points.map((p) => pt(p[0], p[1])).join("L")}`,
        fill: "none",
        stroke: color,
        "stroke-width": 2,
        "data-arm": s.arm,
        "data-kind": "mean",
        "data-points": s.points.length,
      }),
    );
    for (const p of s.points) {
      g.append(svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: color }));
    }
    root.append(g);
  });
  if (spec.chance) {
    const y = Y(spec.chance.value);
    root.append(
      svg("line", {
        x1: m.l,
        x2: W - m.r,
        y1: y,
        y2: y,
        class: "chance",
        "data-kind": "chance",
        "data-value": spec.chance.value,
      }),
      svg(
        "text",
        { x: W - m.r - 4, y: y - 4, "text-anchor": "end", class: "chance-label" },
        spec.chance.label,
      ),
    );
  }
  fig.append(root);
  const legend = el("ul", { class: "legend" });
  spec.series.forEach((s, i) => {
    legend.append(
      el(
        "li",
        { "data-arm": s.arm },
        el("span", { class: "swatch", style: `background:${armColor(s.arm, i)}` }),
        s.label,
      ),
    );
  });
  legend.append(el("li", { class: "band-note" }, `line: mean; band: ${spec.band}`));
  if (spec.chance)
    legend.append(el("li", { class: "chance-note" }, `dashed: ${spec.chance.label}`));
  fig.append(legend);
  $("#grid-charts").append(fig);
  return fig;
}

function renderReachTable(grid) {
  const t = $("#reach-table");
  t.replaceChildren(
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...[
          "metric",
          "arm",
          "final: mean ± sd (n)",
          "final values",
          "seeds reaching the baseline's final mean",
          "first step: mean ± sd",
        ].map((h) => el("th", { scope: "col" }, h)),
      ),
    ),
  );
  const body = el("tbody");
  for (const chart of grid.charts) {
    for (const s of chart.series) {
      const m = grid.stats.arms[s.arm]?.metrics[chart.metric];
      if (!m) continue;
      const r = m.steps_to_reach;
      body.append(
        el(
          "tr",
          { "data-metric": chart.metric, "data-arm": s.arm },
          el("th", { scope: "row" }, chart.metric),
          el("td", {}, s.arm),
          el("td", { class: "num" }, `${fmt(m.final.mean)} ± ${fmt(m.final.sd)} (${m.final.n})`),
          el("td", { class: "num" }, m.final.values.map((v) => fmt(v)).join(", ")),
          el("td", { class: "num" }, r ? `${r.reached} of ${r.seeds} (≤/≥ ${fmt(r.target)})` : "–"),
          el(
            "td",
            { class: "num" },
            r && r.mean !== null ? `${Math.round(r.mean)} ± ${Math.round(r.sd ?? 0)}` : "–",
          ),
        ),
      );
    }
  }
  t.append(body);
}

function renderAeTable(table) {
  const t = $("#ae-table");
  t.replaceChildren(
    el(
      "caption",
      {},
      "Highlighted: the row's best value. One run per arm and no interval: a small gap is no evidence.",
    ),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { scope: "col" }, "metric"),
        ...table.columns.map((c) => el("th", { scope: "col" }, c)),
      ),
    ),
  );
  const body = el("tbody");
  for (const row of table.rows) {
    const known = row.values.filter((v) => v !== null);
    const best =
      row.better && known.length > 1 && new Set(known).size > 1
        ? (row.better === "lower" ? Math.min : Math.max)(...known)
        : null;
    body.append(
      el(
        "tr",
        { "data-metric": row.key },
        el("th", { scope: "row" }, row.label),
        ...row.values.map((v) =>
          el(
            "td",
            { class: `num${best !== null && v === best ? " better" : ""}` },
            row.key === "step" ? String(v ?? "–") : fmt(v),
          ),
        ),
      ),
    );
  }
  t.append(body);
}

function renderGrid(grid) {
  const select = $("#group");
  select.replaceChildren(
    ...grid.groups.map((g) =>
      el(
        "option",
        { value: g.key },
        `${g.label} (${Object.entries(g.arms)
          .map(([arm, n]) => `${arm} ×${n}`)
          .join(", ")})`,
      ),
    ),
  );
  if (grid.group) select.value = grid.group.key;
  $("#grid-arms").textContent = grid.arms
    .map(
      (a) =>
        `${a.arm}: ${a.runs.length} seed${a.runs.length === 1 ? "" : "s"}${
          a.autoencoder ? ` (AE ${a.autoencoder.id})` : ""
        }`,
    )
    .join(" · ");
  $("#grid-warnings").replaceChildren(...grid.warnings.map((w) => el("li", {}, w)));
  $("#grid-summary").replaceChildren(
    ...grid.summary.lines.map((l) =>
      el("li", { "data-metric": l.metric, "data-a": l.a, "data-b": l.b }, l.text),
    ),
    ...grid.summary.sentences
      .filter((s) => !grid.summary.lines.some((l) => l.text === s))
      .map((s) => el("li", { class: "reach" }, s)),
  );
  renderReachTable(grid);
  for (const spec of grid.charts) drawBandChart(spec);
  renderAeTable(grid.ae.table);
  for (const spec of grid.ae.charts) drawChart(spec, "#ae-charts");
  return new Set(grid.ae.charts.map((c) => c.id));
}

// ---- samples -------------------------------------------------------------------------------

let current = null;

function sampleSide(side) {
  const fig = $(`#sample-${side}`);
  return {
    fig,
    caption: fig.querySelector("figcaption"),
    video: fig.querySelector("video"),
    status: fig.querySelector(".sample-status"),
    set(state, text) {
      fig.dataset.state = state;
      this.status.textContent = text;
      this.status.classList.toggle("error", state === "error" || state === "cannot_generate");
    },
  };
}

function renderSampleSetup(cmp) {
  current = cmp;
  const sides = { a: cmp.bundles.a, b: cmp.bundles.b };
  const usable = Object.values(sides).filter((b) => b.canGenerate);
  let labels = usable.length ? usable[0].classes : [];
  for (const b of usable.slice(1)) labels = labels.filter((l) => b.classes.includes(l));
  $("#sample-label").replaceChildren(...labels.map((l) => el("option", { value: l }, l)));
  $("#sample-go").disabled = usable.length === 0;
  for (const key of ["a", "b"]) {
    const s = sampleSide(key);
    const b = sides[key];
    const run = cmp[key].diffusion?.id ?? cmp[key].autoencoder?.id ?? "?";
    s.caption.textContent = `${key}: ${run}${b.model ? ` · bundle ${b.model}` : ""}`;
    s.video.removeAttribute("src");
    s.video.load();
    if (!b.model) s.set("cannot_generate", b.reason);
    else if (!b.canGenerate) s.set("cannot_generate", b.reason);
    else s.set("idle", "Pick a label and a seed, then Generate.");
  }
}

async function pollSample(side, sample) {
  const s = sampleSide(side);
  for (;;) {
    const g = await api(`/admin/api/samples/${sample.id}`);
    if (g.status === "succeeded") {
      s.set("loading", `seed ${g.seed}, ${g.label}: loading the video…`);
      s.video.src = g.content;
      s.video.dataset.sample = g.id;
      try {
        await s.video.play();
      } catch {
        // Autoplay may be refused; the controls are there.
      }
      return;
    }
    if (g.status === "failed" || g.status === "canceled") {
      s.set("error", `${g.status}: ${g.error?.message ?? ""}`);
      return;
    }
    s.set("running", `${g.status}: step ${g.step} of ${g.steps}`);
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function generateSamples(event) {
  event.preventDefault();
  if (!current) return;
  const button = $("#sample-go");
  button.disabled = true;
  const run = (k) => current[k].diffusion?.id ?? current[k].autoencoder?.id;
  const body = {
    a: run("a"),
    b: run("b"),
    label: $("#sample-label").value,
    seed: Number($("#sample-seed").value || 0),
  };
  try {
    const res = await api("/admin/api/samples", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    await Promise.all(
      res.samples.map((entry) => {
        if (entry.error) {
          sampleSide(entry.side).set(
            entry.error.code === "cannot_generate" || entry.error.code === "no_bundle"
              ? "cannot_generate"
              : "error",
            `${entry.error.code}: ${entry.error.message}`,
          );
          return null;
        }
        return pollSample(entry.side, entry.sample);
      }),
    );
  } catch (err) {
    for (const k of ["a", "b"])
      sampleSide(k).set("error", `${err.code ?? "error"}: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

for (const side of ["a", "b"]) {
  const s = sampleSide(side);
  s.video.addEventListener("playing", () => s.set("playing", `playing ${s.video.dataset.sample}`));
  s.video.addEventListener("error", () =>
    s.set("error", `the browser cannot play this video (${s.video.error?.message ?? "error"})`),
  );
}

// ---- start ---------------------------------------------------------------------------------

async function load() {
  const params = new URLSearchParams(window.location.search);
  const a = params.get("a");
  const b = params.get("b");
  const group = params.get("group");
  try {
    const { runs } = await api("/admin/api/runs?limit=500");
    if (runs.length === 0) {
      setStatus("No runs in the registry yet: import a run folder first.");
      return;
    }
    const query = a && b ? `?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}` : "";
    const [cmp, grid] = await Promise.all([
      api(`/admin/api/compare${query}`),
      api(`/admin/api/grid${group ? `?group=${encodeURIComponent(group)}` : ""}`),
    ]);
    const ids = [cmp.a, cmp.b].flatMap((s) => [s.diffusion?.id, s.autoencoder?.id]).filter(Boolean);
    renderRuns(runs, ids);
    clearCharts();
    const drawn = renderGrid(grid);
    renderComparison(cmp, drawn);
    setStatus(`${runs.length} runs; comparing ${ids.join(", ")}.`);
    document.body.dataset.ready = "1";
  } catch (err) {
    setStatus(`Could not load the comparison: ${err.message}`, true);
    document.body.dataset.ready = "error";
  }
}

$("#pick").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams(window.location.search);
  params.set("a", $("#pick-a").value);
  params.set("b", $("#pick-b").value);
  window.history.pushState(null, "", `/admin?${params}`);
  load();
});
$("#pick-group").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams(window.location.search);
  params.set("group", $("#group").value);
  window.history.pushState(null, "", `/admin?${params}`);
  load();
});
window.addEventListener("popstate", load);
$("#samples-form").addEventListener("submit", generateSamples);
load();
