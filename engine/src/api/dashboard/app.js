// The swath dashboard: reads /api/v1/dashboard every 10 s and draws it; the retry buttons and the
// campaigns' pause and resume buttons call the API with the operator's bearer token (kept in this
// tab's session storage only, never in the URL). Every text is set as text, never as HTML.
// Views are hash routes, so that they can be linked and the back button works: `#/` the overview,
// `#/jobs?filters` the job search, `#/jobs/ID` a job's page, `#/completeness?type&from&to` the
// completeness grid.
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

// A link to job `id`'s page.
function jobLink(id, text) {
  return el("a", { href: `#/jobs/${id}`, class: "job-link", "data-job-id": id }, text ?? id);
}

// A cell whose text is cut with an ellipsis when too long, whole in its title.
function cutCell(text, attrs) {
  const value = String(text ?? "");
  return el("td", attrs || {}, el("span", { class: "cut", title: value }, value));
}

// A cell with a job's id (a link to its page) and its name, cut when too long.
function jobCell(j) {
  const name = String(j.name ?? "");
  const text = el("span", { class: "cut job-name", title: `${j.id} ${name}` }, jobLink(j.id), " ", name);
  return el("td", {}, text);
}

function drawRunning(running) {
  document.getElementById("running-count").textContent = `${running.length} shown`;
  document.getElementById("running-count").dataset.count = running.length;
  document.querySelector("#running tbody").replaceChildren(...running.map((j) =>
    el("tr", { "data-job-id": j.id }, jobCell(j), cutCell(j.job_type),
      cutCell(j.status.replace(/_/g, " ")), el("td", { class: "num" }, j.attempt), el("td", {}, ago(j.since)))));
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
    return el("tr", { "data-job-id": j.id }, jobCell(j), cutCell(j.job_type),
      cutCell(j.status.replace(/_/g, " ")), el("td", { class: "num" }, j.attempt),
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

// The headers of an API read: the token if there is one.
function readHeaders() {
  return tokenInput.value ? { Authorization: `Bearer ${tokenInput.value}` } : {};
}

// `GET path` of the API: its JSON, or an error carrying the API's message.
async function getJson(path) {
  const response = await fetch(`${API}${path}`, { headers: readHeaders() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(node, error) {
  node.hidden = !error;
  node.textContent = error ? String(error.message ?? error) : "";
}

function fmtTime(time) {
  return time ? time.slice(0, 19).replace("T", " ") : "";
}

const STATUSES = ["initialized", "configured", "ready", "queued", "started", "pre_processing", "processing",
  "post_processing", "processed", "start_publication", "published", "done", "internal_error",
  "external_error", "error_checked", "cancelled"];

// ---- Job search ----

const searchForm = document.getElementById("search-form");
searchForm.elements.status.replaceChildren(...STATUSES.map((s) => el("option", { value: s }, s.replace(/_/g, " "))));
const FILTERS = ["type", "tile", "campaign", "measured_after", "measured_before", "created_after",
  "created_before", "changed_after"];
const TIME_FILTERS = ["measured_after", "measured_before", "created_after", "created_before", "changed_after"];

// The API's query of the search form (a bare date is midnight UTC).
function searchQuery() {
  const query = new URLSearchParams();
  for (const name of FILTERS) {
    let value = searchForm.elements[name].value.trim();
    if (!value) continue;
    if (TIME_FILTERS.includes(name) && /^\d{4}-\d{2}-\d{2}$/.test(value)) value += "T00:00:00Z";
    query.set(name, value);
  }
  const statuses = [...searchForm.elements.status.selectedOptions].map((o) => o.value);
  if (statuses.length) query.set("status", statuses.join(","));
  return query;
}

function fillSearchForm(query) {
  for (const name of FILTERS) searchForm.elements[name].value = query.get(name) ?? "";
  const statuses = (query.get("status") ?? "").split(",");
  for (const option of searchForm.elements.status.options) option.selected = statuses.includes(option.value);
}

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = searchQuery();
  const hash = `#/jobs?${query}`;
  if (location.hash === hash) runSearch(query);
  else location.hash = hash;
});
searchForm.addEventListener("reset", () => setTimeout(() => { location.hash = "#/jobs"; }));

let searchNext = null;
let searchQueryShown = null;

function jobRow(j, columns) {
  const cells = {
    id: () => el("td", {}, jobLink(j.id)),
    name: () => cutCell(j.name, { class: "job-name" }),
    type: () => cutCell(j.job_type),
    status: () => cutCell(j.status.replace(/_/g, " "), { "data-status": j.status }),
    tile: () => cutCell(j.tile_id ?? ""),
    attempt: () => el("td", { class: "num" }, j.attempt),
    measured: () => cutCell(fmtTime(j.measured_at)),
    changed: () => cutCell(fmtTime(j.status_changed_at)),
    message: () => el("td", { class: "wrap error" },
      [j.status_error_subtype, j.status_message].filter(Boolean).join(": ")),
  };
  return el("tr", { "data-job-id": j.id }, ...columns.map((c) => cells[c]()));
}

const SEARCH_COLUMNS = ["id", "name", "type", "status", "tile", "attempt", "measured", "changed", "message"];

async function runSearch(query, cursor) {
  const error = document.getElementById("search-error");
  const body = document.querySelector("#search-results tbody");
  const more = document.getElementById("search-more");
  const summary = document.getElementById("search-summary");
  if (!cursor) {
    body.replaceChildren();
    summary.textContent = "searching…";
    delete summary.dataset.loaded;
  }
  searchQueryShown = query;
  more.hidden = true;
  const page = new URLSearchParams(query);
  if (cursor) page.set("cursor", cursor);
  try {
    const answer = await getJson(`/jobs?${page}`);
    if (searchQueryShown !== query) return;
    showError(error, null);
    body.append(...answer.jobs.map((j) => jobRow(j, SEARCH_COLUMNS)));
    searchNext = answer.next_cursor;
    more.hidden = !searchNext;
    const n = body.rows.length;
    summary.textContent = `${n} job${n === 1 ? "" : "s"}${searchNext ? " so far" : ""}`;
    summary.dataset.loaded = "true";
    summary.dataset.count = n;
  } catch (e) {
    showError(error, e);
    summary.textContent = "";
    summary.dataset.loaded = "error";
  }
}

document.getElementById("search-more").addEventListener("click", () => {
  if (searchNext && searchQueryShown) runSearch(searchQueryShown, searchNext);
});

// ---- A job's page ----

function section(title, ...content) {
  return [el("h3", {}, title), ...content];
}

function table(id, headers, rows, cols) {
  return el("table", { class: "data", id },
    el("colgroup", {}, ...cols.map((c) => el("col", c ? { class: c } : {}))),
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function summaryTable(id, jobs) {
  if (!jobs.length) return el("p", { class: "legend", id }, "none");
  return table(id, ["job", "name", "type", "status", "attempt", "changed", "message"],
    jobs.map((j) => el("tr", { "data-job-id": j.id }, el("td", {}, jobLink(j.id)), cutCell(j.name),
      cutCell(j.job_type), cutCell(j.status.replace(/_/g, " ")), el("td", { class: "num" }, j.attempt),
      cutCell(fmtTime(j.status_changed_at)), el("td", { class: "wrap" }, j.status_message ?? ""))),
    ["c-id", "c-name", "c-type", "c-status", "c-num", "c-time", null]);
}

function fields(pairs) {
  return el("dl", { class: "fields" }, ...pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]));
}

function drawJob(d) {
  const j = d.job;
  document.getElementById("job-title").textContent = `job ${j.id} · ${j.job_type} · ${j.status.replace(/_/g, " ")}`;
  const related = [];
  const relation = (label, id) => { if (id != null) related.push(el("li", {}, `${label} `, jobLink(id, `job ${id}`))); };
  relation("parent:", j.parent_id);
  relation("spawned by:", j.spawned_by);
  relation("retry of:", j.retry_of);
  relation("depends on:", j.depends_on);
  if (d.blocking_child) {
    related.push(el("li", {}, "waiting for child: ", jobLink(d.blocking_child.id, `job ${d.blocking_child.id}`),
      ` ${d.blocking_child.name} (${d.blocking_child.status.replace(/_/g, " ")})`));
  }
  const campaign = j.campaign_id != null
    ? el("a", { href: `#/jobs?campaign=${j.campaign_id}`, class: "campaign-link" }, `campaign ${j.campaign_id}`) : null;
  const parts = [fields([
    ["name", j.name], ["status", `${j.status.replace(/_/g, " ")} since ${fmtTime(j.status_changed_at)}`],
    ["message", [j.status_error_subtype, j.status_message].filter(Boolean).join(": ")],
    ["attempt", `${j.attempt} of ${j.max_attempts}`], ["next attempt", fmtTime(j.next_attempt_at)],
    ["priority", j.priority], ["product", j.product_id], ["tile", j.tile_id], ["measured", fmtTime(j.measured_at)],
    ["input", j.input_path], ["input published", fmtTime(j.input_published_at)],
    ["output", j.output_path], ["output published", fmtTime(j.output_published_at)],
    ["campaign", campaign], ["created", fmtTime(j.created_at)], ["software", j.software_version],
    ["executor", j.executor_ref], ["recheck", fmtTime(j.recheck_at)],
    ["waiting for children", d.waiting_for_children ? "yes" : null],
  ])];
  if (j.input_withdrawn_at) {
    parts.push(el("div", { class: "withdrawn", id: "job-withdrawn" },
      `Input withdrawn from the catalogue at ${fmtTime(j.input_withdrawn_at)}`,
      j.input_withdrawal_reason ? `: ${j.input_withdrawal_reason}` : ""));
  }
  if (related.length) parts.push(...section("Related jobs", el("ul", { id: "job-related" }, ...related)));

  // The timeline: one row per change, with how long the job stayed in the status it left.
  const rows = d.history.map((h, i) => {
    const previous = d.history[i - 1];
    const stayed = previous ? duration((Date.parse(h.time) - Date.parse(previous.time)) / 1000) : "";
    const change = `${h.previous_status ? h.previous_status.replace(/_/g, " ") : "–"} → ${h.status.replace(/_/g, " ")}`;
    return el("tr", { "data-status": h.status, class: h.error_message || h.error_subtype ? "error" : "" },
      cutCell(fmtTime(h.time)), el("td", { class: "change" }, change), el("td", { class: "num" }, h.attempt),
      el("td", { class: "duration" }, stayed), cutCell(h.error_subtype ?? ""), el("td", { class: "wrap" }, h.error_message ?? ""));
  });
  parts.push(...section(`Status history (${d.history.length} changes)`,
    table("timeline", ["time", "from → to", "attempt", "after", "subtype", "message"], rows,
      ["c-time", "c-change", "c-num", "c-since", "c-status", null])));

  // Attempts with their errors, and where the logs are.
  parts.push(...section("Attempts", d.attempts.length ? table("attempts",
    ["attempt", "from", "to", "last status", "errors"],
    d.attempts.map((a) => el("tr", { "data-attempt": a.attempt }, el("td", { class: "num" }, a.attempt),
      cutCell(fmtTime(a.first_change_at)), cutCell(fmtTime(a.last_change_at)),
      cutCell(a.last_status.replace(/_/g, " ")),
      el("td", { class: "wrap" }, a.errors.length ? el("ul", { class: "errors" }, ...a.errors.map((e) =>
        el("li", { class: "attempt-error" }, `${fmtTime(e.time)} ${e.status.replace(/_/g, " ")}: `,
          [e.subtype, e.message].filter(Boolean).join(": ")))) : "no error"))),
    ["c-num", "c-time", "c-time", "c-status", null]) : el("p", { class: "legend" }, "none")));
  const logs = [["executor (Nomad dispatched job)", j.executor_ref]];
  const results = j.results || {};
  for (const [k, v] of Object.entries(results)) {
    if (k !== "products" && v !== null && typeof v !== "object") logs.push([k.replace(/_/g, " "), String(v)]);
    else if (k !== "products" && v !== null) logs.push([k.replace(/_/g, " "), JSON.stringify(v)]);
  }
  const logFields = logs.filter(([, v]) => v != null && v !== "");
  parts.push(...section("Execution and logs", logFields.length ? el("div", { id: "job-logs" }, fields(logFields))
    : el("p", { class: "legend", id: "job-logs" }, "no executor reference or log location recorded")));

  parts.push(...section(`Children (${d.children.length})`, summaryTable("job-children", d.children)));
  if (d.spawned.length) parts.push(...section(`Spawned (${d.spawned.length})`, summaryTable("job-spawned", d.spawned)));
  parts.push(...section(`Retries (${d.retry_count})`, summaryTable("job-retries", d.retries)));
  parts.push(...section("Products", d.outputs.length ? table("job-outputs",
    ["kind", "path", "size", "completed", "published"],
    d.outputs.map((o) => el("tr", {}, cutCell(o.kind), el("td", { class: "wrap" }, o.path),
      el("td", { class: "num" }, o.size_bytes ?? ""), cutCell(fmtTime(o.completed_at)), cutCell(fmtTime(o.published_at)))),
    ["c-type", "c-path", "c-since", "c-time", "c-time"]) : el("p", { class: "legend" }, "none")));
  parts.push(...section("Publications", d.publications.length ? table("job-publications",
    ["kind", "product", "created", "sent", "confirmed", "error"],
    d.publications.map((p) => el("tr", {}, cutCell(p.kind), cutCell(p.product_id), cutCell(fmtTime(p.created_at)),
      el("td", { class: "num" }, p.sent_count), cutCell(fmtTime(p.confirmed_at)), el("td", { class: "wrap error" }, p.last_error ?? ""))),
    ["c-type", "c-name", "c-time", "c-num", "c-time", null]) : el("p", { class: "legend" }, "none")));
  const body = document.getElementById("job-body");
  body.replaceChildren(...parts);
  body.dataset.jobId = j.id;
}

async function showJob(id) {
  const body = document.getElementById("job-body");
  document.getElementById("job-title").textContent = `job ${id}`;
  delete body.dataset.jobId;
  body.replaceChildren(el("p", { class: "legend" }, "loading…"));
  try {
    const details = await getJson(`/jobs/${id}`);
    if (location.hash !== `#/jobs/${id}`) return;
    showError(document.getElementById("job-error"), null);
    drawJob(details);
  } catch (e) {
    body.replaceChildren();
    showError(document.getElementById("job-error"), e);
  }
}

// ---- Completeness ----

const completenessForm = document.getElementById("completeness-form");
let completeness = null;

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

completenessForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = new URLSearchParams();
  for (const name of ["type", "from", "to"]) query.set(name, completenessForm.elements[name].value.trim());
  const hash = `#/completeness?${query}`;
  if (location.hash === hash) showCompleteness(query);
  else location.hash = hash;
});

// The completeness report (`GET /reports/completeness`).
function fetchCompleteness(query) {
  return getJson(`/reports/completeness?${query}`);
}

async function showCompleteness(query) {
  const f = completenessForm.elements;
  const today = new Date();
  f.type.value = query.get("type") ?? f.type.value;
  f.from.value = query.get("from") ?? (f.from.value || isoDay(new Date(today.getTime() - 30 * 86400000)));
  f.to.value = query.get("to") ?? (f.to.value || isoDay(today));
  const grid = document.getElementById("completeness-grid");
  const error = document.getElementById("completeness-error");
  document.getElementById("cell-details").hidden = true;
  if (!query.get("type")) {
    grid.tHead.replaceChildren();
    grid.tBodies[0].replaceChildren();
    return;
  }
  delete grid.dataset.loaded;
  try {
    completeness = await fetchCompleteness(query);
    showError(error, null);
    drawCompleteness(completeness);
  } catch (e) {
    completeness = null;
    grid.tHead.replaceChildren();
    grid.tBodies[0].replaceChildren();
    showError(error, e);
  }
}

function daysBetween(from, to) {
  const days = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`) && days.length < 400; t += 86400000) {
    days.push(isoDay(new Date(t)));
  }
  return days;
}

function drawCompleteness(report) {
  const grid = document.getElementById("completeness-grid");
  const from = String(report.from).slice(0, 10), to = String(report.to).slice(0, 10);
  const cellDays = report.cells.map((c) => c.day);
  const days = [...new Set([...daysBetween(from, to), ...cellDays])].sort();
  const tiles = [...new Set(report.cells.map((c) => c.tile))].sort();
  const byKey = new Map(report.cells.map((c) => [`${c.tile}/${c.day}`, c]));
  let month = "";
  grid.tHead.replaceChildren(el("tr", {}, el("th", {}, "tile"), ...days.map((d) => {
    const label = d.slice(5, 7) !== month ? d.slice(5) : d.slice(8);
    month = d.slice(5, 7);
    return el("th", { title: d }, label);
  })));
  grid.tBodies[0].replaceChildren(...tiles.map((tile) => el("tr", { "data-tile": tile }, el("th", {}, tile),
    ...days.map((day) => {
      const c = byKey.get(`${tile}/${day}`);
      const state = c ? c.state : "empty";
      const td = el("td", { class: `cell state-${state}`, "data-tile": tile, "data-day": day, "data-state": state });
      td.title = c ? `${tile} ${day}: ${state}\n${c.inputs} inputs, ${c.jobs} jobs, ${c.done_with_products} done with products, `
        + `${c.done_without_product} done without product, ${c.failed} failed, ${c.cancelled} cancelled, `
        + `${c.waiting} waiting, ${c.published} published (${c.published_late} late), ${c.withdrawn} withdrawn`
        : `${tile} ${day}: nothing`;
      if (c && c.state === "gaps") td.textContent = String(report.gaps.filter((g) => g.tile === tile && g.day === day).length || "");
      td.addEventListener("click", () => showCell(report, tile, day, td));
      return td;
    }))));
  const counts = {};
  for (const c of report.cells) counts[c.state] = (counts[c.state] ?? 0) + 1;
  document.getElementById("completeness-summary").textContent =
    ` · ${report.job_type}, ${from} to ${to}, target ${report.timeliness_target_hours} h: ${tiles.length} tiles, `
    + `${report.gaps.length} gaps`;
  grid.dataset.loaded = "true";
}

async function showCell(report, tile, day, td) {
  for (const selected of document.querySelectorAll("#completeness-grid td.selected")) selected.classList.remove("selected");
  td.classList.add("selected");
  const details = document.getElementById("cell-details");
  details.hidden = false;
  details.dataset.tile = tile;
  details.dataset.day = day;
  delete details.dataset.loaded;
  document.getElementById("cell-title").textContent = `${tile} on ${day}: ${td.dataset.state}`;
  const gaps = report.gaps.filter((g) => g.tile === tile && g.day === day);
  document.querySelector("#cell-gaps tbody").replaceChildren(...(gaps.length ? gaps.map((g) =>
    el("tr", { "data-product": g.product ?? "" }, cutCell(g.product ?? ""),
      el("td", {}, g.job_id != null ? jobLink(g.job_id) : ""), cutCell(g.reason ?? ""),
      el("td", { class: "wrap" }, g.detail ?? ""))) : [el("tr", {}, el("td", { colSpan: 4, class: "legend" }, "no gap"))]));
  const jobs = document.querySelector("#cell-jobs tbody");
  jobs.replaceChildren();
  const next = isoDay(new Date(Date.parse(`${day}T00:00:00Z`) + 86400000));
  const query = new URLSearchParams({ type: report.job_type, tile, measured_after: `${day}T00:00:00Z`,
    measured_before: `${next}T00:00:00Z`, limit: "200" });
  const error = document.getElementById("cell-jobs-error");
  try {
    const answer = await getJson(`/jobs?${query}`);
    showError(error, null);
    jobs.replaceChildren(...answer.jobs.map((j) => jobRow(j, ["id", "name", "type", "status", "attempt", "message"])));
  } catch (e) {
    showError(error, e);
  }
  details.dataset.loaded = "true";
}

// ---- Routes ----

function route() {
  const hash = location.hash || "#/";
  const [path, search] = hash.slice(1).split("?");
  const query = new URLSearchParams(search ?? "");
  let view = "overview";
  const job = path.match(/^\/jobs\/(\d+)$/);
  if (job) {
    view = "job";
    showJob(job[1]);
  } else if (path === "/jobs") {
    view = "search";
    fillSearchForm(query);
    runSearch(query);
  } else if (path === "/completeness") {
    view = "completeness";
    showCompleteness(query);
  }
  for (const main of document.querySelectorAll("main.view")) main.hidden = main.id !== `view-${view}`;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.view === (view === "job" ? "search" : view));
  }
  document.body.dataset.view = view;
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
route();

async function refresh() {
  try {
    const response = await fetch(`${API}/dashboard`, { headers: readHeaders() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.status);
    drawCampaigns(body.campaigns);
    const types = [...new Set(body.counts.map((c) => c.job_type))].sort();
    document.getElementById("job-types").replaceChildren(...types.map((t) => el("option", { value: t })));
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
