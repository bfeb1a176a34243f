// Strom's console: draws each <figure class="chart" data-series="..."> as an SVG line chart from
// /api/series and redraws it every sampling interval. Values are numbers from the broker; the
// only text written into the page is made here (axis labels), through textContent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function label(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function draw(svg, points) {
  // Drawn at the element's own width, so that text keeps its size however wide the page is.
  const W = Math.max(200, Math.round(svg.clientWidth || 600)), H = 160, L = 44, B = 18, T = 8;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  svg.appendChild(el("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
  if (points.length === 0) {
    const t = el("text", { x: L + 8, y: H / 2 });
    t.textContent = "collecting samples…";
    svg.appendChild(t);
    svg.dataset.points = "0";
    return;
  }
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  const max = Math.max(1, ...points.map(p => p[1]));
  const x = t => L + (W - L) * (t - t0) / (t1 - t0);
  const y = v => H - B - (H - B - T) * v / max;
  const path = points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join("");
  svg.appendChild(el("path", { class: "area", d: path + "L" + x(points[points.length - 1][0]).toFixed(1) + "," + (H - B) + "L" + x(t0).toFixed(1) + "," + (H - B) + "Z" }));
  svg.appendChild(el("path", { class: "line", d: path }));
  for (const v of [0, max / 2, max]) {
    const t = el("text", { x: 2, y: y(v) + 3 });
    t.textContent = label(v);
    svg.appendChild(t);
  }
  const mins = Math.round((t1 - t0) / 60000);
  const t = el("text", { x: L, y: H - 4 });
  t.textContent = mins > 0 ? mins + " min ago" : "just now";
  svg.appendChild(t);
  const now = el("text", { x: W - 24, y: H - 4 });
  now.textContent = "now";
  svg.appendChild(now);
  svg.dataset.points = String(points.length);
  svg.dataset.last = String(points[points.length - 1][1]);
}

async function refresh(fig) {
  const svg = fig.querySelector("svg");
  try {
    const r = await fetch("/api/series?" + fig.dataset.series, { credentials: "same-origin" });
    if (!r.ok) throw new Error(r.status);
    const body = await r.json();
    draw(svg, body.points);
    return body.interval_ms || 10000;
  } catch (e) {
    fig.dataset.error = String(e);
    return 10000;
  }
}

for (const fig of document.querySelectorAll("figure.chart")) {
  const loop = async () => setTimeout(loop, await refresh(fig));
  loop();
}
