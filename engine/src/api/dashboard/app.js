// The swath dashboard: reads /api/v1/dashboard every 10 s and draws it; the retry buttons and the
// campaigns' pause and resume buttons call the API with the operator's bearer token (kept in this
// tab's session storage only, never in the URL). Every text is set as text, never as HTML.
"use strict";

const API = "/api/v1";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("swath-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("swath-token", tokenInput.value));
tokenInput.addEventListener("input", () => updateCampaignButtons());

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function ago(time) {
  const s = Math.max(0, (Date.now() - Date.parse(time)) / 1000);
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function drawCounts(counts) {
  const types = [...new Set(counts.map((c) => c.job_type))].sort();
  const order = ["initialized", "configured", "ready", "queued", "started", "pre_processing", "processing",
    "post_processing", "processed", "start_publication", "published", "done", "internal_error",
    "external_error", "error_checked", "cancelled"];
  const present = order.filter((s) => counts.some((c) => c.status === s));
  const table = document.getElementById("counts");
  table.tHead.replaceChildren(el("tr", {}, el("th", {}, "type"),
    ...present.map((s) => el("th", { class: "num" }, s.replace(/_/g, " "))), el("th", { class: "num" }, "total")));
  let total = 0;
  table.tBodies[0].replaceChildren(...types.map((type) => {
    let sum = 0;
    const cells = present.map((status) => {
      const n = counts.find((c) => c.job_type === type && c.status === status)?.jobs ?? 0;
      sum += n;
      return el("td", { class: n ? "num" : "num zero", "data-type": type, "data-status": status }, n);
    });
    total += sum;
    return el("tr", {}, el("td", {}, type), ...cells, el("td", { class: "num", "data-type": type, "data-status": "total" }, sum));
  }));
  document.getElementById("total-jobs").textContent = `${total} jobs`;
  document.getElementById("total-jobs").dataset.total = total;
}

function drawRunning(running) {
  document.getElementById("running-count").textContent = `${running.length} shown`;
  document.getElementById("running-count").dataset.count = running.length;
  document.querySelector("#running tbody").replaceChildren(...running.map((j) =>
    el("tr", { "data-job-id": j.id }, el("td", {}, `${j.id} ${j.name}`), el("td", {}, j.job_type),
      el("td", {}, j.status.replace(/_/g, " ")), el("td", { class: "num" }, j.attempt), el("td", {}, ago(j.since)))));
}

async function retry(job, button, cell) {
  button.disabled = true;
  cell.textContent = "retrying…";
  try {
    const response = await fetch(`${API}/jobs/${job.id}/retry`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenInput.value}` },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      cell.textContent = `retry refused: ${body.error || response.status}`;
      button.disabled = false;
      return;
    }
    const id = body.job.id;
    cell.textContent = `retried as job ${id}`;
    cell.dataset.retriedAs = id;
  } catch (e) {
    cell.textContent = `retry failed: ${e}`;
    button.disabled = false;
  }
}

function drawFailures(failures) {
  document.getElementById("failure-count").textContent = `${failures.length} shown`;
  document.getElementById("failure-count").dataset.count = failures.length;
  const body = document.querySelector("#failures tbody");
  const kept = new Map([...body.querySelectorAll("tr[data-job-id]")]
    .filter((row) => row.querySelector("[data-retried-as]"))
    .map((row) => [row.dataset.jobId, row]));
  body.replaceChildren(...failures.map((j) => {
    if (kept.has(String(j.id))) return kept.get(String(j.id));
    const outcome = el("span", { class: "outcome" });
    const button = el("button", { class: "retry", "data-job-id": j.id }, "retry");
    button.addEventListener("click", () => retry(j, button, outcome));
    const error = [j.error_subtype, j.error_message].filter(Boolean).join(": ");
    const retried = j.retries ? ` (retried ${j.retries}×)` : "";
    return el("tr", { "data-job-id": j.id }, el("td", {}, `${j.id} ${j.name}`), el("td", {}, j.job_type),
      el("td", {}, j.status.replace(/_/g, " ")), el("td", { class: "num" }, j.attempt),
      el("td", { class: "error" }, error + retried), el("td", {}, ago(j.since)), el("td", {}, button, " ", outcome));
  }));
}

// What the last pause or resume of a campaign answered, by campaign id (kept across redraws).
const campaignNotes = new Map();
// Campaigns whose pause or resume is under way.
const campaignBusy = new Set();
let lastCampaigns = [];

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m`;
  return `${s}s`;
}

function updateCampaignButtons() {
  const hasToken = tokenInput.value.trim() !== "";
  for (const button of document.querySelectorAll("#campaigns button.campaign-action")) {
    button.disabled = !hasToken || campaignBusy.has(Number(button.dataset.campaignId));
    button.title = hasToken ? "" : "enter the API write token above";
  }
  document.getElementById("campaign-hint").textContent = hasToken ? ""
    : "Pause and resume need the API write token (field above).";
}

async function campaignAction(campaign, action) {
  campaignBusy.add(campaign.id);
  campaignNotes.set(campaign.id, { text: `${action}…`, error: false });
  drawCampaigns(lastCampaigns);
  try {
    const response = await fetch(`${API}/campaigns/${campaign.id}/${action}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenInput.value}` },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      campaignNotes.set(campaign.id, { text: `${action} refused: ${body.error || response.status}`, error: true });
    } else {
      const updated = body.campaign ?? body;
      campaignNotes.set(campaign.id, { text: `${updated.state}`, error: false });
      lastCampaigns = lastCampaigns.map((c) => (c.id === updated.id ? updated : c));
    }
  } catch (e) {
    campaignNotes.set(campaign.id, { text: `${action} failed: ${e}`, error: true });
  }
  campaignBusy.delete(campaign.id);
  drawCampaigns(lastCampaigns);
}

function progressBar(p) {
  const jobs = p.jobs || 0;
  const ended = p.done + p.failed + p.cancelled;
  const percent = jobs ? Math.round((100 * ended) / jobs) : 0;
  const part = (cls, n, what) => {
    const span = el("span", { class: cls, title: `${n} ${what}` });
    span.style.width = jobs ? `${(100 * n) / jobs}%` : "0";
    return span;
  };
  const bar = el("div", { class: "bar", "data-percent": percent },
    part("done", p.done, "done"), part("failed", p.failed, "failed"),
    part("cancelled", p.cancelled, "cancelled"), part("in-flight", p.in_flight, "in flight"));
  bar.title = `${ended} of ${jobs} jobs ended (${percent}%)`;
  const label = el("span", { class: "bar-label" }, `${percent}% · ${ended}/${jobs} jobs · ${p.per_hour.toFixed(1)}/h`);
  return [bar, label];
}

function drawCampaigns(campaigns) {
  lastCampaigns = campaigns;
  const count = document.getElementById("campaign-count");
  count.textContent = `${campaigns.length} shown`;
  count.dataset.count = campaigns.length;
  document.querySelector("#campaigns tbody").replaceChildren(...campaigns.map((c) => {
    const p = c.progress;
    const num = (field, n) => el("td", { class: n ? "num" : "num zero", "data-field": field }, n);
    const skipped = num("skipped", p.skipped_total);
    skipped.title = Object.entries(p.skipped).map(([reason, n]) => `${n}: ${reason}`).join("\n");
    const span = `${c.from.slice(0, 10)} → ${c.to.slice(0, 10)}`;
    const name = el("span", { class: "name", title: `${c.name}\n${span}` }, c.name);
    const state = el("td", { "data-field": "state", class: `state-${c.state}` }, c.state);
    if (c.state_message) state.title = c.state_message;
    const eta = el("td", { "data-field": "eta" },
      p.eta_seconds == null ? (c.state === "listing" ? "listing…" : "–") : duration(p.eta_seconds));
    const action = el("td", { class: "action" });
    const verb = c.state === "paused" ? "resume" : ["listing", "running"].includes(c.state) ? "pause" : null;
    if (verb) {
      const button = el("button", { class: "campaign-action", "data-campaign-id": c.id, "data-action": verb }, verb);
      button.addEventListener("click", () => campaignAction(c, verb));
      action.append(button);
    }
    const note = campaignNotes.get(c.id);
    if (note) action.append(el("span", { class: note.error ? "outcome error" : "outcome", "data-campaign-id": c.id }, note.text));
    return el("tr", { "data-campaign-id": c.id }, el("td", {}, name), el("td", { title: c.job_type }, c.job_type), state,
      el("td", { "data-field": "progress" }, ...progressBar(p)),
      num("done", p.done), num("failed", p.failed), num("in_flight", p.in_flight), num("waiting", p.waiting),
      skipped, eta, action);
  }));
  updateCampaignButtons();
}

// A round step near `raw`: 1, 2, 2.5 or 5 times a power of ten.
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  return power * ([1, 2, 2.5, 5, 10].find((m) => m * power >= raw) ?? 10);
}

function drawChart(svg, days, series, target) {
  const W = 640, H = 260, left = 44, right = 12, top = 12, bottom = 34;
  svg.replaceChildren();
  const values = series.flatMap((s) => s.points.flatMap((p) => [p.median, p.p90])).filter((v) => v != null);
  const step = niceStep(Math.max(target * 1.25, ...values, 1) / 4);
  const ymax = step * Math.ceil(Math.max(target * 1.25, ...values, 1) / step);
  const x = (i) => left + (days.length <= 1 ? (W - left - right) / 2 : (i * (W - left - right)) / (days.length - 1));
  const y = (v) => H - bottom - (v / ymax) * (H - top - bottom);
  for (let v = 0; v <= ymax + step / 2; v += step) {
    svg.append(svgEl("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    const label = svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = Number(v.toFixed(2));
    svg.append(label);
  }
  svg.append(svgEl("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }));
  const every = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((day, i) => {
    if (i % every && i !== days.length - 1) return;
    const anchor = days.length > 1 && i === 0 ? "start" : days.length > 1 && i === days.length - 1 ? "end" : "middle";
    const label = svgEl("text", { x: x(i), y: H - bottom + 16, "text-anchor": anchor });
    label.textContent = day.slice(5);
    svg.append(label);
  });
  const line = svgEl("line", { class: "target", x1: left, x2: W - right, y1: y(target), y2: y(target) });
  line.dataset.hours = target;
  svg.append(line);
  series.forEach((s, n) => {
    const color = COLORS[n % COLORS.length];
    for (const [key, width] of [["median", 2.5], ["p90", 1]]) {
      const pts = s.points.filter((p) => p[key] != null);
      if (pts.length > 1) {
        svg.append(svgEl("polyline", {
          points: pts.map((p) => `${x(p.i)},${y(p[key])}`).join(" "),
          fill: "none", stroke: color, "stroke-width": width,
        }));
      }
      for (const p of pts) {
        const dot = svgEl("circle", { cx: x(p.i), cy: y(p[key]), r: width + 1, fill: color });
        dot.setAttribute("class", `point ${key}`);
        dot.dataset.jobType = s.jobType;
        dot.dataset.day = days[p.i];
        dot.dataset.hours = p[key];
        const tip = svgEl("title");
        tip.textContent = `${s.jobType} ${days[p.i]}: ${key} ${p[key].toFixed(2)} h (${p.jobs} jobs)`;
        dot.append(tip);
        svg.append(dot);
      }
    }
    const label = svgEl("text", { x: left + 8 + n * 110, y: top + 10, fill: color });
    label.setAttribute("style", `fill:${color}`);
    label.textContent = s.jobType;
    svg.append(label);
  });
}

function drawTimeliness(rows, target) {
  document.getElementById("target-hours").textContent = target;
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const types = [...new Set(rows.map((r) => r.job_type))].sort();
  const seriesOf = (median, p90) => types.map((jobType) => ({
    jobType,
    points: rows.filter((r) => r.job_type === jobType)
      .map((r) => ({ i: days.indexOf(r.day), median: r[median], p90: r[p90], jobs: r.jobs })),
  }));
  drawChart(document.getElementById("chart-input"), days, seriesOf("sensing_to_input_h", "sensing_to_input_p90_h"), target);
  drawChart(document.getElementById("chart-output"), days, seriesOf("input_to_output_h", "input_to_output_p90_h"), target);
}

async function refresh() {
  try {
    const headers = tokenInput.value ? { Authorization: `Bearer ${tokenInput.value}` } : {};
    const response = await fetch(`${API}/dashboard`, { headers });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.status);
    drawCampaigns(body.campaigns);
    drawCounts(body.counts);
    drawRunning(body.running);
    drawFailures(body.failures);
    drawTimeliness(body.timeliness, body.timeliness_target_hours);
    const updated = document.getElementById("updated");
    updated.textContent = `updated ${new Date(body.generated_at).toISOString().slice(0, 19).replace("T", " ")} UTC`;
    updated.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("updated").textContent = `cannot read the dashboard: ${e.message}`;
  }
}

refresh();
setInterval(refresh, 10000);
