// The admin page: reads /admin/api (session cookie), draws the comparison with uPlot (served from
// node_modules), and makes sample videos of both runs' bundles. Plain ES module, no build step.
// Each chart's <figure> carries what it actually drew: data-series (count), data-labels (JSON)
// and data-points (JSON, non-null points per series), read back from the uPlot instance.

import uPlot from "/admin/vendor/uplot/uPlot.esm.js";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#2457c5", "#e0711a", "#1b9e5a", "#8e44ad"];
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

function drawChart(spec) {
  const fig = el("figure", { class: "chart", id: `chart-${spec.id}`, "data-chart": spec.id });
  const plot = el("div", { class: "plot" });
  fig.append(el("figcaption", {}, spec.title), plot);
  if (spec.note) fig.append(el("p", { class: "note" }, spec.note));
  $("#charts").append(fig);
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
        stroke: COLORS[i % COLORS.length],
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

function renderComparison(cmp) {
  for (const u of charts.values()) u.destroy();
  charts.clear();
  $("#charts").replaceChildren();
  const name = (s) => s.diffusion?.id ?? s.autoencoder?.id ?? "?";
  $("#pick-a").value = name(cmp.a);
  $("#pick-b").value = name(cmp.b);
  const describe = (s) =>
    s.diffusion ? `${s.diffusion.id} (AE ${s.autoencoder?.id ?? "?"})` : (s.autoencoder?.id ?? "?");
  $("#pair").textContent = `a: ${describe(cmp.a)} · b: ${describe(cmp.b)}`;
  $("#warnings").replaceChildren(...cmp.warnings.map((w) => el("li", {}, w)));
  $("#summary").replaceChildren(...cmp.summary.sentences.map((s) => el("li", {}, s)));
  for (const spec of cmp.charts) {
    drawChart(spec);
  }
  resize.disconnect();
  resize.observe($("#charts"));

  const t = $("#ae-table");
  const [ca, cb] = cmp.table.columns;
  t.replaceChildren(
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { scope: "col" }, "metric"),
        el("th", { scope: "col" }, `a: ${ca}`),
        el("th", { scope: "col" }, `b: ${cb}`),
      ),
    ),
  );
  const body = el("tbody");
  for (const row of cmp.table.rows) {
    const win =
      row.better && row.a !== null && row.b !== null && row.a !== row.b
        ? row.a < row.b === (row.better === "lower")
          ? "a"
          : "b"
        : null;
    const cell = (side, v) =>
      el(
        "td",
        { class: `num${win === side ? " better" : ""}` },
        row.key === "step" ? String(v ?? "–") : fmt(v),
      );
    body.append(
      el(
        "tr",
        { "data-metric": row.key },
        el("th", { scope: "row" }, row.label),
        cell("a", row.a),
        cell("b", row.b),
      ),
    );
  }
  t.append(body);
  renderSampleSetup(cmp);
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
  try {
    const { runs } = await api("/admin/api/runs?limit=500");
    if (runs.length === 0) {
      setStatus("No runs in the registry yet: import a run folder first.");
      return;
    }
    const query = a && b ? `?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}` : "";
    const cmp = await api(`/admin/api/compare${query}`);
    const ids = [cmp.a, cmp.b].flatMap((s) => [s.diffusion?.id, s.autoencoder?.id]).filter(Boolean);
    renderRuns(runs, ids);
    renderComparison(cmp);
    setStatus(`${runs.length} runs; comparing ${ids.join(", ")}.`);
    document.body.dataset.ready = "1";
  } catch (err) {
    setStatus(`Could not load the comparison: ${err.message}`, true);
    document.body.dataset.ready = "error";
  }
}

$("#pick").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ a: $("#pick-a").value, b: $("#pick-b").value });
  window.history.pushState(null, "", `/admin?${params}`);
  load();
});
window.addEventListener("popstate", load);
$("#samples-form").addEventListener("submit", generateSamples);
load();
