// The admin page: reads /admin/api (session cookie), draws the experiment view (arms over seeds:
// one summary line per metric, paired by seed; per metric an SVG chart of each arm relative to
// the baseline with its paired 95% band and one of each arm's mean with a mean ± sd band; the
// arms' autoencoders and their latent-channel pictures) and the comparison of two runs with uPlot
// (served from node_modules), and makes sample videos of two loaded bundles for the same label
// and seed. Plain ES module, no build step.
// Each uPlot chart's <figure> carries what it actually drew: data-series (count), data-labels
// (JSON) and data-points (JSON, non-null points per series), read back from the uPlot instance.
// Each SVG band chart draws one <path data-arm data-kind="band|mean" data-points> per arm, a
// <line data-kind="chance"> on the class score and a <line data-kind="reference"> (0 = the
// baseline) on a relative chart. SVG charts are drawn at the width they are shown at (redrawn on
// resize), so their text keeps its size on a phone.

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

/** How a tick value prints: as many decimals as the tick step needs ("80", "0.25", "2.5"). */
function tickDecimals(step) {
  for (let d = 0; d <= 8; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
  }
  return 8;
}
const tickText = (v, step, signed = false) => {
  const s = (Math.abs(v) < step * 1e-6 ? 0 : v).toFixed(tickDecimals(step));
  return signed && v > step * 1e-6 ? `+${s}` : s;
};

/** A log axis tick: "0.01", "1", "1e-4" (uPlot's own format prints 1e-4 as "0"); "" for the
 * minor ticks uPlot leaves unlabelled. */
function logTick(v) {
  if (v === null || v === undefined) return "";
  if (v >= 0.001 && v < 1e5) return String(Number(v.toPrecision(3)));
  const e = Math.log10(v);
  return Math.abs(e - Math.round(e)) < 1e-9 ? `1e${Math.round(e)}` : v.toExponential(1);
}

/** Line styles per arm (and per side of a pair), so that lines on top of each other still show. */
const DASHES = { baseline: null, a: null, se: [7, 4], b: [7, 4], "se-spatial": [2, 3] };
const WIDTHS = { baseline: 3, a: 3, se: 2, b: 2, "se-spatial": 2, video: 1.5 };
const dashOf = (key) => DASHES[key] ?? DASHES[key?.replace(/_latent$/, "")] ?? null;
const widthOf = (key) => WIDTHS[key] ?? WIDTHS[key?.replace(/_latent$/, "")] ?? 2;

let measureCtx = null;
/** The width in CSS px of a text in the page's 12px font. */
function textWidth(text, font = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif") {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  measureCtx.font = font;
  return measureCtx.measureText(text).width;
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
  /** The y axis as wide as its longest tick label, so that the axis title beside it never
   * overlaps the labels. */
  const axisSize = (self, values, axisIdx, cycleNum) => {
    const axis = self.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    const longest = Math.max(0, ...(values ?? []).map((v) => textWidth(String(v))));
    return Math.ceil(axis.ticks.size + axis.gap + longest + 6);
  };
  const opts = {
    ...plotSize(plot),
    scales: { x: { time: false }, y: spec.y.log ? { distr: 3, log: 10 } : {} },
    axes: [
      { label: spec.x.label, size: 36, labelSize: 20 },
      {
        label: spec.y.label,
        size: axisSize,
        labelSize: 20,
        gap: 4,
        ...(spec.y.log ? { values: (_u, splits) => splits.map(logTick) } : {}),
      },
    ],
    series: [
      { label: spec.x.label },
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke:
          ARM_COLORS[s.key] ??
          ARM_COLORS[s.key?.replace(/_latent$/, "")] ??
          (s.key === "video" ? "#7a4fa3" : COLORS[i % COLORS.length]),
        width: widthOf(s.key),
        ...(dashOf(s.key) ? { dash: dashOf(s.key) } : {}),
        spanGaps: true,
        points: { show: sparse, size: 6 },
      })),
    ],
    // The legend is the page's own (below): a line sample in each series' colour and dash.
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    hooks: {
      // What the y axis drew: its tick labels and its width, for the browser test.
      draw: [
        (u) => {
          fig.dataset.yTicks = JSON.stringify(u.axes[1]._values ?? []);
          fig.dataset.yAxisSize = String(u.axes[1]._size);
        },
      ],
    },
  };
  const u = new uPlot(opts, data, plot);
  charts.set(spec.id, u);
  const legend = el("ul", { class: "legend" });
  u.series.slice(1).forEach((s, i) => {
    const key = spec.series[i]?.key;
    legend.append(
      el(
        "li",
        { "data-series": key ?? String(i), "data-dash": JSON.stringify(s.dash ?? null) },
        swatch(s.stroke(u, i + 1), s.dash ?? null, s.width),
        el("span", { class: "label" }, s.label),
      ),
    );
  });
  plot.after(legend);
  fig.dataset.series = String(u.series.length - 1);
  fig.dataset.labels = JSON.stringify(u.series.slice(1).map((s) => s.label));
  fig.dataset.points = JSON.stringify(
    u.data.slice(1).map((ys) => ys.filter((v) => v !== null && v !== undefined).length),
  );
  fig.dataset.log = String(spec.y.log);
  return fig;
}

/** The SVG band charts: their spec and the width they were drawn at. */
const svgCharts = new Map();

const resize = new ResizeObserver(() => {
  for (const [id, u] of charts) {
    const plot = document.querySelector(`#chart-${id} .plot`);
    if (plot) u.setSize(plotSize(plot));
  }
  for (const entry of svgCharts.values()) {
    if (entry.plot.clientWidth !== entry.width) (entry.render ?? renderBandPlot)(entry);
  }
});

function clearCharts() {
  for (const u of charts.values()) u.destroy();
  charts.clear();
  svgCharts.clear();
  for (const id of ["#charts", "#grid-charts", "#ae-charts", "#trade-off"]) $(id).replaceChildren();
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

/** A line-style sample for a legend: the arm's colour and dash. */
function swatch(color, dash, width = 2.5) {
  return svg(
    "svg",
    { class: "swatch", width: 22, height: 10, viewBox: "0 0 22 10", "aria-hidden": "true" },
    svg("line", {
      x1: 1,
      x2: 21,
      y1: 5,
      y2: 5,
      stroke: color,
      "stroke-width": width,
      ...(dash ? { "stroke-dasharray": dash.join(" ") } : {}),
    }),
  );
}

/** A chart of each arm's line with its band: the mean over seeds with mean ± sd (absolute), or the
 * arm relative to the baseline with its paired 95% interval (relative, 0 = the baseline). */
function drawBandChart(spec) {
  const fig = el("figure", {
    class: `chart band-chart ${spec.kind}`,
    id: `grid-chart-${spec.id}`,
    "data-chart": spec.id,
    "data-kind": spec.kind,
    "data-metric": spec.metric,
    "data-band": spec.band,
  });
  const plot = el("div", { class: "band-wrap" });
  fig.append(el("figcaption", {}, spec.title), plot);
  const legend = el("ul", { class: "legend" });
  spec.series.forEach((s, i) => {
    legend.append(
      el(
        "li",
        { "data-arm": s.arm },
        swatch(armColor(s.arm, i), dashOf(s.arm), widthOf(s.arm)),
        s.label,
      ),
    );
  });
  const line = spec.kind === "relative" ? "line: paired mean" : "line: mean";
  legend.append(el("li", { class: "band-note" }, `${line}; band: ${spec.band}`));
  if (spec.chance)
    legend.append(el("li", { class: "chance-note" }, `dashed: ${spec.chance.label}`));
  if (spec.reference)
    legend.append(
      el(
        "li",
        { class: "reference-note" },
        `0 = the ${spec.reference.label}; ${spec.better === "lower" ? "below" : "above"} 0 is better`,
      ),
    );
  fig.append(legend);
  $("#grid-charts").append(fig);
  const entry = { spec, plot, width: 0 };
  svgCharts.set(spec.id, entry);
  renderBandPlot(entry);
  return fig;
}

/** The y axis over [y0, y1]: its ticks, their labels, and the left margin they need (the rotated
 * axis title, a gap, the longest tick label, a gap). */
function yAxis(y0, y1, relative) {
  const yTicks = ticks(y0, y1);
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  const yLabels = yTicks.map((v) => tickText(v, yStep, relative));
  const left = 20 + Math.ceil(Math.max(...yLabels.map((t) => textWidth(t)))) + 10;
  return { yTicks, yLabels, left };
}

/** An SVG plot's frame: the y grid lines and tick labels, x ticks over [x0, x1], both axes and
 * their titles (the y title rotated, left of the tick labels the margin `m.l` leaves room for). */
function plotFrame({ W, H, m, X, Y, x0, x1, yTicks, yLabels, xTitle, yTitle, label }) {
  const root = svg("svg", {
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    class: "band-plot",
    role: "img",
    "aria-label": label,
  });
  const axes = svg("g", { class: "axes" });
  yTicks.forEach((v, i) => {
    axes.append(
      svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: "grid" }),
      svg(
        "text",
        { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end", "data-kind": "y-tick" },
        yLabels[i],
      ),
    );
  });
  const xTicks = ticks(x0, x1, W < 500 ? 4 : 6);
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
  for (const v of xTicks) {
    axes.append(
      svg("line", { x1: X(v), x2: X(v), y1: H - m.b, y2: H - m.b + 4, class: "tick" }),
      svg(
        "text",
        { x: X(v), y: H - m.b + 16, "text-anchor": "middle", "data-kind": "x-tick" },
        tickText(v, xStep),
      ),
    );
  }
  const midY = (m.t + H - m.b) / 2;
  axes.append(
    svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }),
    svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }),
    svg(
      "text",
      { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle", class: "axis-title" },
      xTitle,
    ),
    svg(
      "text",
      {
        x: 13,
        y: midY,
        transform: `rotate(-90 13 ${midY})`,
        "text-anchor": "middle",
        class: "axis-title",
        "data-kind": "y-title",
      },
      yTitle,
    ),
  );
  root.append(axes);
  return root;
}

/** A relative chart's end label: the line's final difference, in percent. */
const endText = (v) => `${tickText(v, 0.1, true)}%`;
// The end labels are 11px bold (app.css .end-label); measured at 12px, the margin errs wide.
const END_LABEL_FONT = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/** Draws (again) a band chart's SVG at its container's width. */
function renderBandPlot(entry) {
  const { spec, plot } = entry;
  const W = Math.max(240, plot.clientWidth || 640);
  entry.width = plot.clientWidth;
  const H = W < 500 ? 230 : 270;
  const relative = spec.kind === "relative";
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = spec.series.flatMap((s) => s.points.flatMap((p) => [p[2], p[3]]));
  if (spec.chance) ys.push(spec.chance.value);
  if (spec.reference) ys.push(spec.reference.value);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  let y0 = Math.min(...ys);
  let y1 = Math.max(...ys);
  const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.1 || 1;
  y0 -= pad;
  y1 += pad;
  const { yTicks, yLabels, left } = yAxis(y0, y1, relative);
  // Right margin: room for the relative charts' end labels (each line's final figure).
  const endTexts = relative
    ? spec.series.flatMap((s) => (s.points.length ? [endText(s.points.at(-1)[1])] : []))
    : [];
  const endWidth = Math.max(0, ...endTexts.map((t) => textWidth(t, END_LABEL_FONT)));
  const m = { l: left, r: relative ? Math.ceil(6 + endWidth + 6) : 14, t: 12, b: 42 };
  const X = (x) => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const Y = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const pt = (x, y) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
  const root = plotFrame({
    ...{ W, H, m, X, Y, x0, x1, yTicks, yLabels },
    ...{ xTitle: spec.x.label, yTitle: spec.y.label, label: spec.title },
  });
  if (spec.reference) {
    const y = Y(spec.reference.value);
    root.append(
      svg("line", {
        x1: m.l,
        x2: W - m.r,
        y1: y,
        y2: y,
        class: "reference",
        "data-kind": "reference",
        "data-value": spec.reference.value,
      }),
    );
  }
  spec.series.forEach((s, i) => {
    const color = armColor(s.arm, i);
    const upper = s.points.map((p) => pt(p[0], p[3]));
    const lower = s.points.map((p) => pt(p[0], p[2])).reverse();
    root.append(
      svg("path", {
        d: `M${[...upper, ...lower].join("L")}Z`,
        fill: color,
        "fill-opacity": relative ? 0.2 : 0.16,
        stroke: "none",
        "data-arm": s.arm,
        "data-kind": "band",
        "data-points": s.points.length,
      }),
    );
  });
  const ends = [];
  spec.series.forEach((s, i) => {
    const color = armColor(s.arm, i);
    const g = svg("g", { "data-arm": s.arm });
    const dash = dashOf(s.arm);
    g.append(
      svg("path", {
        d: `M${s.points.map((p) => pt(p[0], p[1])).join("L")}`,
        fill: "none",
        stroke: color,
        "stroke-width": widthOf(s.arm),
        ...(dash ? { "stroke-dasharray": dash.join(" ") } : {}),
        "data-arm": s.arm,
        "data-kind": "mean",
        "data-points": s.points.length,
      }),
    );
    for (const p of s.points) {
      const value = relative
        ? `${tickText(p[1], 0.1, true)}% [${tickText(p[2], 0.1, true)}%, ${tickText(p[3], 0.1, true)}%]`
        : fmt(p[1]);
      g.append(
        svg(
          "circle",
          { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: color },
          svg("title", {}, `${s.arm}, step ${p[0]}: ${value}`),
        ),
      );
    }
    root.append(g);
    const last = s.points.at(-1);
    if (relative && last)
      ends.push({
        y: Y(last[1]),
        x: X(last[0]),
        text: endText(last[1]),
        color,
        arm: s.arm,
      });
  });
  // The final relative difference beside each line's end (the summary line's figure), the labels
  // pushed apart when they would overlap.
  ends.sort((p, q) => p.y - q.y);
  for (let i = 1; i < ends.length; i++) {
    if (ends[i].y - ends[i - 1].y < 13) ends[i].y = ends[i - 1].y + 13;
  }
  for (const e of ends) {
    root.append(
      svg(
        "text",
        { x: e.x + 6, y: e.y + 4, style: `fill:${e.color}`, class: "end-label", "data-arm": e.arm },
        e.text,
      ),
    );
  }
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
  plot.replaceChildren(root);
}

// ---- reconstruction against diffusion quality, by latent channels ----------------------------

/** Marker shapes, one per latent-channel count in the order they first appear. */
const SHAPES = ["circle", "square", "diamond"];

function marker(shape, x, y, size, attrs) {
  if (shape === "circle") return svg("circle", { cx: x, cy: y, r: size, ...attrs });
  const d =
    shape === "square"
      ? `M${x - size},${y - size}h${2 * size}v${2 * size}h${-2 * size}Z`
      : `M${x},${y - size * 1.3}L${x + size * 1.3},${y}L${x},${y + size * 1.3}L${x - size * 1.3},${y}Z`;
  return svg("path", { d, ...attrs });
}

/** The trade-off figure: each arm's autoencoder at (validation PSNR, final fd_cls3d ± sd over
 * seeds), colour by arm, shape by latent channels; an autoencoder whose diffusion is still to
 * run is a dashed line at its PSNR. Each marker carries data-channels, data-arm, data-psnr and
 * data-fd ("" for none). */
function drawTradeOff(tradeOff) {
  const host = $("#trade-off");
  if (tradeOff.points.length === 0) {
    host.replaceChildren(el("p", { class: "hint" }, "No autoencoder of a diffusion group yet."));
    return;
  }
  const channels = [...new Set(tradeOff.points.map((p) => p.channels))];
  const fig = el("figure", { class: "chart trade-off", "data-chart": "trade-off" });
  const plot = el("div", { class: "band-wrap" });
  fig.append(
    el("figcaption", {}, `Reconstruction against diffusion quality (${tradeOff.metric})`),
    plot,
  );
  const legend = el("ul", { class: "legend" });
  const arms = [...new Set(tradeOff.points.map((p) => p.arm))];
  arms.forEach((arm, i) => {
    legend.append(el("li", { "data-arm": arm }, swatch(armColor(arm, i), null), arm));
  });
  channels.forEach((c, i) => {
    const icon = svg(
      "svg",
      { class: "swatch", width: 14, height: 14, viewBox: "0 0 14 14", "aria-hidden": "true" },
      marker(SHAPES[i % SHAPES.length], 7, 7, 5, { fill: "#555" }),
    );
    legend.append(el("li", { "data-channels": c ?? "" }, icon, `${c ?? "?"} latent channels`));
  });
  if (tradeOff.points.some((p) => p.fd === null))
    legend.append(el("li", { class: "band-note" }, "dashed: its diffusion is still to run"));
  legend.append(el("li", { class: "band-note" }, "bar: ± sd over seeds"));
  if (tradeOff.points.some((p) => p.linear !== null))
    legend.append(el("li", { class: "band-note" }, "dotted: the linear code, same clips"));
  fig.append(legend, el("p", { class: "hint" }, tradeOff.note));
  host.replaceChildren(fig);
  const entry = { spec: { tradeOff, channels, arms }, plot, width: 0, render: renderTradeOff };
  svgCharts.set("trade-off", entry);
  renderTradeOff(entry);
}

/** A linear-code line's label: right of the line, or left of it where it would run past `right`. */
function linearLabel(text, x, y, right) {
  const fits = x + 4 + textWidth(text) <= right;
  return svg(
    "text",
    { x: fits ? x + 4 : x - 4, y, "text-anchor": fits ? "start" : "end", class: "linear-label" },
    text,
  );
}

function renderTradeOff(entry) {
  const { tradeOff, channels, arms } = entry.spec;
  const { plot } = entry;
  const W = Math.max(240, plot.clientWidth || 640);
  entry.width = plot.clientWidth;
  const H = W < 500 ? 230 : 270;
  const withFd = tradeOff.points.filter((p) => p.fd);
  // The linear code of each latent grid: one dotted line per channel count.
  const linear = new Map();
  for (const p of tradeOff.points) if (p.linear !== null) linear.set(p.channels, p.linear);
  const xs = [...tradeOff.points.map((p) => p.psnr), ...linear.values()];
  const ys = withFd.flatMap((p) => [p.fd.mean - p.fd.sd, p.fd.mean + p.fd.sd]);
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  const xPad = (x1 - x0) * 0.12 || 0.5;
  x0 -= xPad;
  x1 += xPad;
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  const yPad = (y1 - y0) * 0.1 || Math.abs(y1) * 0.1 || 1;
  y0 = Math.max(0, y0 - yPad);
  y1 += yPad;
  const { yTicks, yLabels, left } = yAxis(y0, y1, false);
  const m = { l: left, r: 14, t: 12, b: 42 };
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const root = plotFrame({
    ...{ W, H, m, X, Y, x0, x1, yTicks, yLabels },
    xTitle: `autoencoder PSNR, ${tradeOff.psnrFrom === "ae_eval" ? "ae_eval's" : "last"} val clips (dB, right is better)`,
    yTitle: `final ${tradeOff.metric} (lower is better)`,
    label: `reconstruction PSNR against final ${tradeOff.metric}`,
  });
  for (const [c, v] of linear) {
    root.append(
      svg("line", {
        x1: X(v),
        x2: X(v),
        y1: m.t,
        y2: H - m.b,
        class: "linear",
        "data-kind": "linear",
        "data-channels": c ?? "",
        "data-psnr": v,
      }),
      linearLabel(`linear code, ${c ?? "?"} ch`, X(v), H - m.b - 6, W - m.r),
    );
  }
  for (const p of tradeOff.points) {
    const color = armColor(p.arm, arms.indexOf(p.arm));
    const shape = SHAPES[channels.indexOf(p.channels) % SHAPES.length];
    const g = svg("g", {
      "data-kind": "point",
      "data-arm": p.arm,
      "data-channels": p.channels ?? "",
      "data-psnr": p.psnr,
      "data-fd": p.fd ? p.fd.mean : "",
    });
    const name = `${p.channels ?? "?"} ch · ${p.arm} · ${p.autoencoder}`;
    if (p.fd) {
      const x = X(p.psnr);
      g.append(
        svg("line", {
          x1: x,
          x2: x,
          y1: Y(p.fd.mean - p.fd.sd),
          y2: Y(p.fd.mean + p.fd.sd),
          stroke: color,
          "stroke-width": 1.5,
          "data-kind": "sd",
        }),
        marker(shape, x, Y(p.fd.mean), 5, { fill: color }),
        svg(
          "title",
          {},
          `${name}: ${fmt(p.psnr)} dB, ${tradeOff.metric} ${fmt(p.fd.mean)} ± ${fmt(p.fd.sd)} (${p.fd.n} seeds, step ${p.fd.step}; ${p.group})`,
        ),
      );
    } else {
      const x = X(p.psnr);
      g.append(
        svg("line", {
          x1: x,
          x2: x,
          y1: m.t,
          y2: H - m.b,
          stroke: color,
          "stroke-dasharray": "4 3",
          "data-kind": "pending",
        }),
        marker(shape, x, m.t + 6, 5, { fill: "white", stroke: color, "stroke-width": 1.5 }),
        svg("title", {}, `${name}: ${fmt(p.psnr)} dB; no diffusion on its latents yet`),
      );
    }
    root.append(g);
  }
  plot.replaceChildren(root);
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
  for (const chart of grid.charts.filter((c) => c.kind === "absolute")) {
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
  renderMetricLines(grid.summary.metrics);
  $("#grid-all").replaceChildren(
    ...grid.summary.lines.map((l) =>
      el("li", { "data-metric": l.metric, "data-a": l.a, "data-b": l.b }, l.text),
    ),
    ...grid.summary.sentences
      .filter((s) => !grid.summary.lines.some((l) => l.text === s))
      .map((s) => el("li", { class: s.includes("paired by seed") ? "paired" : "reach" }, s)),
  );
  renderReachTable(grid);
  for (const spec of grid.charts) drawBandChart(spec);
  renderAeTable(grid.ae.table);
  for (const spec of grid.ae.charts) drawChart(spec, "#ae-charts");
  renderLatents(grid.ae.pictures);
  drawTradeOff(grid.tradeOff);
  return new Set(grid.ae.charts.map((c) => c.id));
}

/** One line per metric: its comparisons paired by seed, the verdict words in colour. The line's
 * text is the server's `text`, word for word. */
function renderMetricLines(metrics) {
  $("#grid-summary").replaceChildren(
    ...metrics.map((m) => {
      const li = el("li", { "data-metric": m.metric, "data-better": m.better });
      li.append(el("strong", { class: "head" }, m.head), ": ");
      m.parts.forEach((p, i) => {
        if (i > 0) li.append("; ");
        const tone = p.verdict === "a" ? "better" : p.verdict === "b" ? "worse" : "none";
        li.append(
          el(
            "span",
            {
              class: "part",
              "data-a": p.a,
              "data-b": p.b,
              "data-basis": p.basis,
              "data-verdict": tone,
            },
            `${p.a} vs ${p.b}: `,
            el("b", { class: `verdict ${tone}` }, p.word),
            p.detail,
          ),
        );
      });
      li.append(".");
      if (m.reachText) li.append(" ", el("span", { class: "reach" }, `${m.reachText}.`));
      return li;
    }),
  );
  if (metrics.length === 0)
    $("#grid-summary").append(
      el("li", { class: "none" }, "No metric has two arms to compare yet."),
    );
}

/** The latent channels of the same val clip under each arm's autoencoder, side by side. */
function renderLatents(pictures) {
  const box = $("#latents");
  box.replaceChildren(
    ...pictures.map((p) => {
      const fig = el("figure", { class: "latent", "data-arm": p.arm, "data-run": p.runId });
      const cap = el("figcaption", {}, swatch(armColor(p.arm), null), `${p.arm} · ${p.runId}`);
      fig.append(cap);
      if (p.latentChannels) {
        fig.append(
          el("img", {
            src: p.latentChannels,
            alt: `the first latent channels of one val clip under ${p.runId}`,
            decoding: "async",
          }),
        );
      } else {
        fig.append(
          el(
            "p",
            { class: "missing" },
            `No picture yet: ${p.runId}'s folder has no latent-channels.png (the autoencoder evaluation writes it).`,
          ),
        );
      }
      return fig;
    }),
  );
  if (pictures.length === 0)
    box.append(el("p", { class: "missing" }, "No autoencoder run in the registry yet."));
}

// ---- samples ------------------------------------------------------------------------------

/** The loaded bundles (/admin/api/bundles) that the two pickers list. */
let sampleBundles = [];

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

/** The pickers list every loaded bundle; they default to the bundles that serve the compared
 * runs when both can generate, else to the server's default pair (the baseline and SE bundles). */
function renderSampleSetup(list, cmp) {
  sampleBundles = list.bundles;
  for (const side of ["a", "b"]) {
    $(`#sample-model-${side}`).replaceChildren(
      ...sampleBundles.map((b) =>
        el(
          "option",
          { value: b.name, ...(b.canGenerate ? {} : { disabled: "" }) },
          `${b.name} (${b.variant}${b.canGenerate ? "" : ", cannot generate"})`,
        ),
      ),
    );
  }
  const ca = cmp?.bundles?.a;
  const cb = cmp?.bundles?.b;
  const fromPair = Boolean(ca?.canGenerate && cb?.canGenerate);
  const pair = fromPair ? { a: ca.model, b: cb.model } : list.default;
  if (pair) {
    $("#sample-model-a").value = pair.a;
    $("#sample-model-b").value = pair.b;
  }
  $("#samples-note").textContent = !pair
    ? "No loaded bundle can generate: add a bundle with a denoiser to the models dir."
    : fromPair
      ? "Defaults: the bundles that serve the two compared runs."
      : "Defaults: the loaded baseline and SE bundles.";
  updateSampleSides();
}

const bundleNamed = (name) => sampleBundles.find((b) => b.name === name) ?? null;

/** Captions and the label list (the labels both picked bundles know) for the picked bundles. */
function updateSampleSides() {
  const picked = {
    a: bundleNamed($("#sample-model-a").value),
    b: bundleNamed($("#sample-model-b").value),
  };
  const usable = Object.values(picked).filter((b) => b?.canGenerate);
  let labels = usable.length ? usable[0].classes : [];
  for (const b of usable.slice(1)) labels = labels.filter((l) => b.classes.includes(l));
  const select = $("#sample-label");
  const keep = select.value;
  select.replaceChildren(...labels.map((l) => el("option", { value: l }, l)));
  if (labels.includes(keep)) select.value = keep;
  $("#sample-go").disabled = usable.length < 2 || labels.length === 0;
  for (const key of ["a", "b"]) {
    const s = sampleSide(key);
    const b = picked[key];
    s.caption.replaceChildren(
      `${key}: `,
      b ? el("strong", {}, b.name) : "no bundle",
      b ? ` (${b.variant})${b.runs.diffusion ? ` · denoiser ${b.runs.diffusion}` : ""}` : "",
    );
    s.video.removeAttribute("src");
    delete s.video.dataset.sample;
    s.video.load();
    if (!b) s.set("cannot_generate", "No loaded bundle to pick.");
    else if (!b.canGenerate)
      s.set("cannot_generate", `${b.name} has no denoiser: it cannot generate.`);
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
  const button = $("#sample-go");
  button.disabled = true;
  const body = {
    models: { a: $("#sample-model-a").value, b: $("#sample-model-b").value },
    label: $("#sample-label").value,
    seed: Number($("#sample-seed").value || 0),
  };
  // With a file: an image becomes frame 0 (image-to-video), a clip is continued (extension).
  const file = $("#sample-input").files?.[0];
  let init;
  if (file) {
    const form = new FormData();
    form.append("models.a", body.models.a);
    form.append("models.b", body.models.b);
    form.append("label", body.label);
    form.append("seed", String(body.seed));
    form.append(file.type.startsWith("image/") ? "image" : "video", file, file.name);
    init = { method: "POST", body: form };
  } else {
    init = {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    };
  }
  try {
    const res = await api("/admin/api/samples", init);
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
  s.video.addEventListener("error", () => {
    if (s.video.getAttribute("src"))
      s.set("error", `the browser cannot play this video (${s.video.error?.message ?? "error"})`);
  });
  $(`#sample-model-${side}`).addEventListener("change", updateSampleSides);
}

// ---- start ---------------------------------------------------------------------------------

async function load() {
  const params = new URLSearchParams(window.location.search);
  const a = params.get("a");
  const b = params.get("b");
  const group = params.get("group");
  try {
    const [{ runs }, bundles] = await Promise.all([
      api("/admin/api/runs?limit=500"),
      api("/admin/api/bundles"),
    ]);
    clearCharts();
    resize.disconnect();
    for (const id of ["#charts", "#grid-charts", "#ae-charts"]) resize.observe($(id));
    if (runs.length === 0) {
      renderSampleSetup(bundles, null);
      renderLatents([]);
      setStatus("No runs in the registry yet: import a run folder first.");
      document.body.dataset.ready = "1";
      return;
    }
    const query = a && b ? `?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}` : "";
    const [cmp, grid] = await Promise.all([
      // Without a baseline/SE pair of runs there is nothing to compare (404 no_runs).
      api(`/admin/api/compare${query}`).catch((err) => {
        if (err.code === "no_runs") return null;
        throw err;
      }),
      api(`/admin/api/grid${group ? `?group=${encodeURIComponent(group)}` : ""}`),
    ]);
    const ids = cmp
      ? [cmp.a, cmp.b].flatMap((s) => [s.diffusion?.id, s.autoencoder?.id]).filter(Boolean)
      : [];
    renderRuns(runs, ids);
    const drawn = renderGrid(grid);
    if (cmp) renderComparison(cmp, drawn);
    $("#compare-section").hidden = cmp === null;
    renderSampleSetup(bundles, cmp);
    setStatus(
      cmp
        ? `${runs.length} runs; comparing ${ids.join(", ")}.`
        : `${runs.length} runs; no baseline/SE pair to compare.`,
    );
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
