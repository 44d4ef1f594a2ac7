// The annotator page: claim a pair, show it, label it by keyboard, and have the next pair ready.
//
// Everything goes through the JSON API with the session cookie and its CSRF token. The next pair is claimed
// while the annotator reads the current one, so a label shows the next pair at once; the label itself is
// sent in the background with an Idempotency-Key, retried on network errors without ever labelling twice.
// Response text is Markdown rendered with raw HTML escaped, then sanitised (DOMPurify); the page's
// Content-Security-Policy allows no inline script besides.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const main = $("main");
  const timings = (window.__realTimings = []);

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, body, headers) {
      super((body && (body.detail || body.title)) || "HTTP " + status);
      this.status = status;
      this.body = body || {};
      this.headers = headers;
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)real_csrf=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function toSignIn() {
    location.assign("/sign-in?next=" + encodeURIComponent(location.pathname + location.search));
  }

  async function api(method, path, body, options) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    Object.assign(headers, (options && options.headers) || {});
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      keepalive: Boolean(options && options.keepalive),
    });
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (_) { data = null; }
    }
    if (response.status === 401) {
      toSignIn();
      throw new ApiError(401, data, response.headers);
    }
    if (!response.ok) throw new ApiError(response.status, data, response.headers);
    return { status: response.status, data, headers: response.headers };
  }

  const retryable = (error) =>
    !(error instanceof ApiError) || error.status >= 500 || error.status === 429 || error.status === 408;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---------------------------------------------------------------- rendering
  const escapeHtml = (text) =>
    String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  const markdown = new marked.Marked({ gfm: true, breaks: true, async: false });
  markdown.use({
    renderer: {
      // Raw HTML in a text is shown as text, never parsed.
      html(token) { return escapeHtml(token.text || token.raw || ""); },
      // Images would load from anywhere: show their alt text and address as a link instead.
      image(token) {
        return '<a href="' + escapeHtml(token.href || "") + '">[image: ' + escapeHtml(token.text || "") + "]</a>";
      },
    },
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  const PURIFY = {
    FORBID_TAGS: ["style", "img", "form", "input", "button", "textarea", "select", "iframe", "svg", "math"],
    FORBID_ATTR: ["style", "class", "id"],
    ALLOW_DATA_ATTR: false,
  };

  function renderMarkdown(element, text) {
    element.innerHTML = DOMPurify.sanitize(markdown.parse(String(text)), PURIFY);
  }

  function contentText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((part) => (typeof part === "string" ? part : part && part.text) || "").join("\n");
    }
    return content == null ? "" : JSON.stringify(content);
  }

  function renderPrompt(element, prompt) {
    element.replaceChildren();
    if (!Array.isArray(prompt)) {
      const body = document.createElement("div");
      renderMarkdown(body, prompt);
      element.append(body);
      return;
    }
    for (const turn of prompt) {
      const role = String((turn && turn.role) || "message");
      const box = document.createElement("div");
      box.className = "turn turn-" + (["system", "user", "assistant"].includes(role) ? role : "other");
      const who = document.createElement("p");
      who.className = "role";
      who.textContent = role;
      const body = document.createElement("div");
      renderMarkdown(body, contentText(turn && turn.content));
      box.append(who, body);
      element.append(box);
    }
  }

  // ---------------------------------------------------------------- state
  let me = null;
  let projects = [];
  let projectId = null;
  let mode = "label";
  let current = null; // the assignment on screen: {assignment_id, ..., deadline, ttl}
  let upcoming = null; // the prefetched claim: a Promise of {item} | {reason, retryAfter} | {error}
  let upcomingResult = null; // the same, once it has settled
  let lastLabelled = null; // {id} of the last label stored, for undo
  const pending = new Set(); // labels and skips still being sent
  let retryTimer = null;
  let reviewQueue = [];
  let reviewItem = null;
  let stateAction = null;

  function notice(text, kind) {
    const element = $("notice");
    element.textContent = text || "";
    element.className = "notice" + (kind ? " notice-" + kind : "");
    element.hidden = !text;
  }

  function announce(text) { $("announce").textContent = text; }

  const STATES = {
    loading: ["Loading…", ""],
    empty: ["Nothing left to label", "Every pair of this project is labelled or held by someone. This page checks again by itself."],
    budget_spent: ["The budget is spent", "This project has all the labels it pays for. Thank you! Pick another project or come back later."],
    waiting_for_embeddings: ["Waiting for embeddings", "New prompts are still being prepared. This page checks again in a few seconds."],
    active_lease_limit: ["Too many open pairs", "You hold the most pairs allowed at once (in other tabs?). Finish or close them, then retry."],
    lease_lost: ["Lease lost", "You held this pair longer than its lease (or the tab was hidden), so it went back to the queue. Nothing was saved for it."],
    network: ["Network error", "The server cannot be reached. Your labels are kept and sent again once it answers."],
    no_projects: ["No project", "Your key may not work on any project yet. Ask your data team to add you to one."],
    review_empty: ["Nothing to review", "No pair of this project needs a review now."],
    error: ["Something went wrong", ""],
  };

  function showState(name, detail, action) {
    clearTimeout(retryTimer);
    const [title, text] = STATES[name] || STATES.error;
    main.dataset.state = name;
    $("task").hidden = true;
    $("state").hidden = false;
    $("state-title").textContent = title;
    $("state-text").textContent = detail || text;
    const button = $("state-action");
    stateAction = action ? action.run : null;
    button.hidden = !action;
    if (action) button.textContent = action.label;
    $("lease").textContent = "";
    announce(title);
  }

  function showTask() {
    clearTimeout(retryTimer);
    $("state").hidden = true;
    $("task").hidden = false;
    main.dataset.state = mode === "review" ? "review" : "labelling";
  }

  // ---------------------------------------------------------------- the label queue
  function withDeadline(item, headers) {
    // The server's clock, from its Date header (whole seconds, so up to a second behind: counted as spent).
    const serverNow = (Date.parse(headers.get("Date") || "") || Date.now()) + 1000;
    const left = Date.parse(item.lease_expires_at) - serverNow;
    item.deadline = performance.now() + left;
    item.ttl = Math.max(left, 1000);
    return item;
  }

  async function claim() {
    const project = projectId;
    try {
      const response = await api("POST", "/v1/projects/" + project + "/queue/claim");
      if (response.status === 204) {
        return {
          reason: response.headers.get("Real-Queue-Reason") || "empty",
          retryAfter: Number(response.headers.get("Retry-After")) || 30,
        };
      }
      return { item: withDeadline(response.data, response.headers), project };
    } catch (error) {
      if (error instanceof ApiError && error.body.code === "active_lease_limit") {
        return { reason: "active_lease_limit", retryAfter: Number(error.headers.get("Retry-After")) || 30 };
      }
      return { error };
    }
  }

  function prefetch() {
    if (upcoming || mode !== "label") return;
    upcomingResult = null;
    const promise = claim();
    upcoming = promise;
    promise.then((result) => { if (upcoming === promise) upcomingResult = result; });
  }

  function release(item, keepalive) {
    if (!item || item.deadline <= performance.now()) return; // an ended lease is back in the queue anyway
    api("POST", "/v1/assignments/" + item.assignment_id + "/release", undefined, { keepalive }).catch(() => {});
  }

  function releaseAll(keepalive) {
    if (current) release(current, keepalive);
    if (upcomingResult && upcomingResult.item) release(upcomingResult.item, keepalive);
    else if (upcoming) upcoming.then((result) => result.item && release(result.item, true));
    current = null;
    upcoming = null;
    upcomingResult = null;
  }

  async function advance(t0) {
    current = null;
    let result = upcoming ? await upcoming : null;
    upcoming = null;
    upcomingResult = null;
    // A prefetched lease about to end, an older "nothing to do", or another project's claim: claim afresh.
    if (!result || !result.item || result.project !== projectId || result.item.deadline - performance.now() < 3000) {
      if (result && result.item) release(result.item);
      if (t0 !== undefined && !(result && result.item)) showState("loading");
      result = await claim();
    }
    if (mode !== "label") {
      if (result.item) release(result.item);
      return;
    }
    if (result.item) {
      showPair(result.item, t0);
      prefetch();
    } else if (result.reason) {
      showState(result.reason, "", { label: "Check again", run: () => advance() });
      retryTimer = setTimeout(() => advance(), Math.min(result.retryAfter, 60) * 1000);
    } else {
      const offline = retryable(result.error);
      showState(offline ? "network" : "error", offline ? "" : result.error.message, { label: "Retry", run: () => advance() });
      if (offline) retryTimer = setTimeout(() => advance(), 5000);
    }
  }

  function resetExtras() {
    $("rationale").value = "";
    document.querySelector('input[name="confidence"][value=""]').checked = true;
  }

  function showPair(item, t0) {
    current = item;
    renderPrompt($("prompt"), item.prompt);
    renderMarkdown($("response-a"), item.response_a.text);
    renderMarkdown($("response-b"), item.response_b.text);
    renderMarkdown($("instructions"), item.instructions || "Choose the better response.");
    for (const id of ["prompt", "response-a", "response-b"]) $(id).scrollTop = 0;
    $("title-a").lastChild.textContent = " Response 1";
    $("title-b").lastChild.textContent = " Response 2";
    $("choice-a-text").textContent = "1 is better";
    $("choice-b-text").textContent = "2 is better";
    $("review-labels").hidden = true;
    $("undo").hidden = false;
    $("skip").hidden = false;
    $("rationale-label").textContent = "Rationale";
    resetExtras();
    main.dataset.assignment = item.assignment_id;
    showTask();
    tick();
    announce("New pair");
    if (t0 !== undefined) {
      requestAnimationFrame(() => requestAnimationFrame(() => {
        const elapsed = performance.now() - t0;
        timings.push(elapsed);
        main.dataset.lastSwapMs = elapsed.toFixed(1);
      }));
    }
  }

  function chosenExtras() {
    const body = {};
    const confidence = document.querySelector('input[name="confidence"]:checked').value;
    if (confidence) body.confidence = Number(confidence);
    const rationale = $("rationale").value.trim();
    if (rationale) body.rationale = rationale;
    return body;
  }

  function label(choice) {
    if (!current) return;
    const t0 = performance.now();
    const item = current;
    if (item.deadline <= t0) { leaseLost(); return; }
    const body = Object.assign({ choice }, chosenExtras());
    send(item, "label", body, randomKey());
    advance(t0);
  }

  // Send a label or skip until the server has answered it; a retry repeats the same Idempotency-Key.
  async function send(item, what, body, key) {
    const id = item.assignment_id;
    pending.add(id);
    const path = "/v1/assignments/" + id + "/" + what;
    for (let attempt = 0; ; attempt += 1) {
      try {
        await api("POST", path, body, key ? { headers: { "Idempotency-Key": key } } : undefined);
        if (what === "label") lastLabelled = { id };
        if (attempt > 0) notice("Saved.", "ok");
        break;
      } catch (error) {
        if (!retryable(error)) {
          if (error.status === 409 && what === "skip") break; // already gone: nothing to skip
          const lost = error.body.code === "lease_expired";
          notice(
            lost ? "Lease lost: your last label arrived after its lease ended and was not saved."
                 : "Your last " + what + " was not saved: " + error.message,
            "error",
          );
          break;
        }
        notice("Network problem: sending your last " + what + " again…", "warn");
        await sleep(Math.min(8000, 500 * 2 ** attempt));
      }
    }
    pending.delete(id);
    refreshProgress();
  }

  function leaseLost() {
    if (current) current = null;
    showState("lease_lost", "", { label: "Next pair", run: () => advance(performance.now()) });
  }

  function openSkip() {
    if (!current) return;
    $("skip-reason").value = "";
    $("skip-dialog").showModal();
    $("skip-reason").focus();
  }

  function skip(reason) {
    if (!current) return;
    const t0 = performance.now();
    const item = current;
    send(item, "skip", reason ? { reason } : {}, null);
    advance(t0);
  }

  async function undo() {
    if (mode !== "label") return;
    while (pending.size) await sleep(50);
    if (!lastLabelled) {
      notice("Nothing to undo.", "warn");
      return;
    }
    const id = lastLabelled.id;
    try {
      await api("DELETE", "/v1/assignments/" + id + "/label");
      lastLabelled = null;
      notice("Your last label was withdrawn; its pair goes back to the queue.", "ok");
      refreshProgress();
    } catch (error) {
      notice(error instanceof ApiError ? "Undo refused: " + error.message : "Undo failed: the server cannot be reached.", "error");
    }
  }

  // ---------------------------------------------------------------- lease countdown and renewal
  function format(ms) {
    const seconds = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
  }

  async function renew(item) {
    if (item.renewing || item.renewalsLeft === 0) return;
    item.renewing = true;
    try {
      const response = await api("POST", "/v1/assignments/" + item.assignment_id + "/renew");
      withDeadline(Object.assign(item, { lease_expires_at: response.data.lease_expires_at }), response.headers);
      item.renewalsLeft = response.data.renewals_left;
    } catch (error) {
      if (error instanceof ApiError && error.body.code === "renewal_limit") item.renewalsLeft = 0;
    } finally {
      item.renewing = false;
    }
  }

  function tick() {
    const now = performance.now();
    const visible = document.visibilityState === "visible";
    if (mode === "label" && current) {
      const left = current.deadline - now;
      if (left <= 0) { leaseLost(); return; }
      $("lease").textContent = "Lease " + format(left);
      $("lease").classList.toggle("lease-low", left < 30000);
      if (visible && left < Math.max(1000, Math.min(60000, current.ttl * 0.3))) renew(current);
    }
    const next = upcomingResult && upcomingResult.item;
    if (visible && next) {
      const left = next.deadline - now;
      if (left > 0 && left < Math.max(1000, Math.min(60000, next.ttl * 0.3))) renew(next);
    }
  }
  setInterval(tick, 250);
  document.addEventListener("visibilitychange", tick);
  window.addEventListener("pagehide", () => releaseAll(true));

  // ---------------------------------------------------------------- progress
  function startOfToday() {
    const day = new Date();
    day.setHours(0, 0, 0, 0);
    const offset = -day.getTimezoneOffset();
    const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
    return day.getFullYear() + "-" + pad(day.getMonth() + 1) + "-" + pad(day.getDate()) + "T00:00:00" +
      (offset >= 0 ? "+" : "-") + pad(offset / 60) + ":" + pad(offset % 60);
  }

  async function refreshProgress() {
    if (!projectId) return;
    try {
      const { data } = await api("GET", "/v1/projects/" + projectId + "/progress?since=" + encodeURIComponent(startOfToday()));
      let text = "Today: " + data.labels_since + " labelled · " + data.skips_since + " skipped";
      if (data.gold_enabled && data.gold_answered) {
        text += " · gold " + Math.round(100 * data.gold_accuracy) + "% of " + data.gold_answered;
      }
      $("progress").textContent = text;
      $("progress").dataset.labels = data.labels_since;
      $("progress").dataset.skips = data.skips_since;
    } catch (_) { /* progress is a nicety; the queue goes on */ }
  }

  // ---------------------------------------------------------------- review queue
  const SIDE_NAMES = { a: "A", b: "B", tie: "tie", both_bad: "both bad" };

  async function startReview() {
    try {
      reviewQueue = (await api("GET", "/v1/projects/" + projectId + "/review")).data;
    } catch (error) {
      showState(retryable(error) ? "network" : "error", retryable(error) ? "" : error.message, { label: "Retry", run: startReview });
      return;
    }
    nextReview();
  }

  async function nextReview() {
    reviewItem = reviewQueue.shift() || null;
    if (!reviewItem) {
      showState("review_empty", "", { label: "Check again", run: startReview });
      return;
    }
    let pair;
    try {
      pair = (await api("GET", "/v1/projects/" + projectId + "/pairs/" + reviewItem.pair_id + "/review")).data;
    } catch (error) {
      showState("error", error.message, { label: "Retry", run: startReview });
      return;
    }
    renderPrompt($("prompt"), pair.prompt);
    renderMarkdown($("response-a"), pair.response_a.text);
    renderMarkdown($("response-b"), pair.response_b.text);
    renderMarkdown($("instructions"), pair.instructions || "");
    $("title-a").lastChild.textContent = " Response A";
    $("title-b").lastChild.textContent = " Response B";
    $("choice-a-text").textContent = "A is better";
    $("choice-b-text").textContent = "B is better";
    const list = $("review-label-list");
    list.replaceChildren();
    for (const item of pair.labels) {
      const entry = document.createElement("li");
      entry.textContent = SIDE_NAMES[item.side] + (item.confidence ? " (confidence " + item.confidence + ")" : "") +
        (item.rationale ? ": " + item.rationale : "");
      list.append(entry);
    }
    $("review-labels").hidden = false;
    $("undo").hidden = true;
    $("rationale-label").textContent = "Note";
    resetExtras();
    main.dataset.pair = pair.pair_id;
    showTask();
  }

  async function verdict(choice) {
    if (!reviewItem) return;
    const note = $("rationale").value.trim();
    try {
      await api("POST", "/v1/projects/" + projectId + "/pairs/" + reviewItem.pair_id + "/review",
        note ? { verdict: choice, note } : { verdict: choice });
      notice("Verdict saved.", "ok");
      nextReview();
    } catch (error) {
      notice("The verdict was not saved: " + error.message, "error");
    }
  }

  // ---------------------------------------------------------------- wiring
  function choose(choice) {
    if (mode === "review") verdict(choice);
    else label(choice);
  }

  function setMode(next) {
    if (next === mode) return;
    releaseAll(false);
    mode = next;
    $("mode-label").setAttribute("aria-pressed", String(mode === "label"));
    $("mode-review").setAttribute("aria-pressed", String(mode === "review"));
    start();
  }

  function start() {
    notice("");
    refreshProgress();
    if (mode === "review") startReview();
    else advance();
  }

  const KEYS = {
    "1": () => choose("a"), ArrowLeft: () => choose("a"),
    "2": () => choose("b"), ArrowRight: () => choose("b"),
    t: () => choose("tie"), b: () => choose("both_bad"),
    s: () => (mode === "review" ? nextReview() : openSkip()),
    u: () => undo(),
    "?": () => $("help").showModal(),
  };

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (document.querySelector("dialog[open]")) return;
    const target = event.target;
    if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) return;
    if (event.key === "Enter" && !$("state").hidden && stateAction) {
      event.preventDefault();
      stateAction();
      return;
    }
    const action = KEYS[event.key];
    if (!action || (event.key !== "?" && $("task").hidden)) return;
    event.preventDefault();
    action();
  });

  for (const button of document.querySelectorAll("button.choice")) {
    button.addEventListener("click", () => choose(button.dataset.choice));
  }
  $("skip").addEventListener("click", () => (mode === "review" ? nextReview() : openSkip()));
  $("undo").addEventListener("click", undo);
  $("state-action").addEventListener("click", () => stateAction && stateAction());
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("skip-dialog").addEventListener("close", () => {
    if ($("skip-dialog").returnValue === "skip") skip($("skip-reason").value.trim());
  });
  $("mode-label").addEventListener("click", () => setMode("label"));
  $("mode-review").addEventListener("click", () => setMode("review"));
  $("project").addEventListener("change", () => {
    releaseAll(false);
    projectId = $("project").value;
    localStorage.setItem("real-align:project", projectId);
    start();
  });
  $("sign-out").addEventListener("click", async () => {
    releaseAll(true);
    try { await api("DELETE", "/v1/session"); } catch (_) { /* signed out anyway */ }
    location.assign("/sign-in");
  });

  async function boot() {
    try {
      me = (await api("GET", "/v1/me")).data;
      projects = (await api("GET", "/v1/me/projects?limit=200")).data.items;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        showState("network", "", { label: "Retry", run: boot });
      }
      return;
    }
    $("who").textContent = me.name;
    $("mode-review").hidden = !(me.reviewer || me.role === "admin" || me.role === "data_team");
    const select = $("project");
    select.replaceChildren(...projects.map((p) => new Option(p.name, p.id)));
    if (!projects.length) {
      showState("no_projects");
      return;
    }
    const wanted = new URLSearchParams(location.search).get("project") || localStorage.getItem("real-align:project");
    projectId = projects.some((p) => p.id === wanted) ? wanted : projects[0].id;
    select.value = projectId;
    start();
  }
  boot();
})();
