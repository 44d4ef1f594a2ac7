// The project dashboard: every number is fetched from the JSON API (GET /v1/projects/{id}/dashboard,
// .../dashboard/timeline, .../dashboard/similarity) with the session cookie, and drawn here as plain SVG.
// No data is ever written with innerHTML: text goes through textContent, so a name cannot inject markup.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 30000; // overview and timeline; the similarity histogram is read once per project load
  const COLORS = { blue: '#1f5fbf', orange: '#b4461c', green: '#2e7d32', purple: '#6a3d9a', grey: '#767676' };
  const state = { project: null, overview: null, timeline: null, similarity: null, timer: null, skew: 0 };

  // ------------------------------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'text') node.textContent = String(v);
      else node.setAttribute(k, String(v));
    }
    return node;
  }

  const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  function fmtInt(n) { return n === null || n === undefined ? '–' : integer.format(n); }
  function fmt(n, digits) { return n === null || n === undefined ? '–' : Number(n).toFixed(digits); }
  function pct(n) { return n === null || n === undefined ? '–' : (100 * n).toFixed(1) + '%'; }
  function time(iso) {
    const d = new Date(iso);
    return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }
  function shortTime(ms, spanMs) {
    const d = new Date(ms);
    const iso = d.toISOString();
    return spanMs > 2 * 86400000 ? iso.slice(5, 10) + ' ' + iso.slice(11, 16) : iso.slice(11, 16);
  }

  function setStatus(text, isError) {
    const status = document.getElementById('status');
    status.textContent = text;
    status.classList.toggle('error', Boolean(isError));
  }

  class HttpError extends Error {
    constructor(status, detail) { super(detail || 'HTTP ' + status); this.status = status; }
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: 'same-origin', headers: { Accept: 'application/json' } }, options || {}));
    if (!response.ok) {
      let detail = '';
      try { const body = await response.json(); detail = body.detail || body.title || ''; } catch (e) { /* not JSON */ }
      throw new HttpError(response.status, detail);
    }
    return response.status === 204 ? null : response.json();
  }

  function csrfToken() {
    const found = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith('real_csrf='));
    return found ? decodeURIComponent(found.slice('real_csrf='.length)) : '';
  }

  // ------------------------------------------------------------------------------------------- charts

  function niceTicks(min, max, count) {
    if (!(max > min)) { max = min + 1; }
    const raw = (max - min) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
    return ticks;
  }

  // A chart: an SVG sized to its container (role img, named by its title and a description), a legend,
  // and the exact numbers in a table under "Data" for screen readers and checks.
  function frame(container, opts) {
    container.replaceChildren();
    const width = Math.max(280, Math.round(container.clientWidth || 400));
    const height = opts.height || Math.round(Math.min(260, Math.max(190, width * 0.5)));
    const m = { top: 10, right: 12, bottom: 34, left: 46 };
    const id = container.id;
    const root = svg('svg', {
      width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-labelledby': `${id}-title ${id}-desc`, 'data-chart': id,
    });
    root.append(svg('title', { id: `${id}-title`, text: opts.title }));
    root.append(svg('desc', { id: `${id}-desc`, text: opts.description }));
    const plot = { x0: m.left, x1: width - m.right, y0: height - m.bottom, y1: m.top };
    if (opts.legend && opts.legend.length) {
      const legend = el('ul', { class: 'legend' });
      for (const item of opts.legend) {
        const swatch = el('span', { class: 'swatch' + (item.dashed ? ' dashed' : ''), 'aria-hidden': 'true' });
        swatch.style.background = item.color;
        legend.append(el('li', {}, swatch, item.name));
      }
      container.append(legend);
    }
    container.append(root);
    return { root, plot, width, height };
  }

  function axes(root, plot, x, y, xTicks, yTicks, xFmt, yFmt, xLabel, yLabel) {
    for (const t of yTicks) {
      const py = y(t);
      root.append(svg('line', { class: 'gridline', x1: plot.x0, x2: plot.x1, y1: py, y2: py }));
      root.append(svg('text', { x: plot.x0 - 6, y: py + 4, 'text-anchor': 'end', text: yFmt(t) }));
    }
    for (const t of xTicks) {
      const px = x(t);
      root.append(svg('line', { class: 'axis', x1: px, x2: px, y1: plot.y0, y2: plot.y0 + 4 }));
      root.append(svg('text', { x: px, y: plot.y0 + 16, 'text-anchor': 'middle', text: xFmt(t) }));
    }
    root.append(svg('line', { class: 'axis', x1: plot.x0, x2: plot.x1, y1: plot.y0, y2: plot.y0 }));
    root.append(svg('line', { class: 'axis', x1: plot.x0, x2: plot.x0, y1: plot.y0, y2: plot.y1 }));
    if (xLabel) root.append(svg('text', { x: (plot.x0 + plot.x1) / 2, y: plot.y0 + 30, 'text-anchor': 'middle', text: xLabel }));
    if (yLabel) {
      root.append(svg('text', {
        x: -(plot.y0 + plot.y1) / 2, y: 11, transform: 'rotate(-90)', 'text-anchor': 'middle', text: yLabel,
      }));
    }
  }

  function dataTable(container, caption, headers, rows) {
    const table = el('table', {});
    table.append(el('caption', { class: 'visually-hidden', text: caption }));
    const head = el('tr', {});
    headers.forEach((h, n) => head.append(el('th', { scope: 'col', class: n ? 'num' : null, text: h })));
    table.append(el('thead', {}, head));
    const body = el('tbody', {});
    for (const row of rows) {
      const tr = el('tr', {});
      row.forEach((cell, n) => tr.append(el(n ? 'td' : 'th', n ? { class: 'num', text: cell } : { scope: 'row', text: cell })));
      body.append(tr);
    }
    table.append(body);
    const wrap = el('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': caption }, table);
    const details = el('details', {}, el('summary', { text: 'Data' }), wrap);
    container.append(details);
    return table;
  }

  function empty(container, text) {
    container.replaceChildren(el('p', { class: 'empty', text }));
  }

  // Lines over a numeric or time x axis; a null y breaks the line. series: [{name, color, dashed, points}]
  function lineChart(container, opts) {
    const all = opts.series.flatMap((s) => s.points.filter((p) => p[1] !== null));
    if (!all.length) { empty(container, opts.emptyText); return; }
    const { root, plot } = frame(container, opts);
    let xMin = Math.min(...all.map((p) => p[0])); let xMax = Math.max(...all.map((p) => p[0]));
    if (xMin === xMax) { xMin -= opts.xPad || 1; xMax += opts.xPad || 1; }
    const margin = (xMax - xMin) * 0.02; // the first and last markers stay inside the plot
    xMin -= margin; xMax += margin;
    const yMin = opts.yMin !== undefined ? Math.min(opts.yMin, ...all.map((p) => p[1])) : Math.min(0, ...all.map((p) => p[1]));
    let yMax = opts.yMax !== undefined ? Math.max(opts.yMax, ...all.map((p) => p[1])) : Math.max(...all.map((p) => p[1]));
    if (yMax <= yMin) yMax = yMin + 1;
    const x = (v) => plot.x0 + ((v - xMin) / (xMax - xMin)) * (plot.x1 - plot.x0);
    const y = (v) => plot.y0 - ((v - yMin) / (yMax - yMin)) * (plot.y0 - plot.y1);
    const xTicks = opts.time ? niceTimeTicks(xMin, xMax) : niceTicks(xMin, xMax, 5);
    axes(root, plot, x, y, xTicks, niceTicks(yMin, yMax, 4), opts.xFmt, opts.yFmt, opts.xLabel, opts.yLabel);
    for (const s of opts.series) {
      let d = '';
      let pen = false;
      for (const [px, py] of s.points) {
        if (py === null) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + x(px).toFixed(1) + ' ' + y(py).toFixed(1);
        pen = true;
      }
      if (d) {
        root.append(svg('path', {
          d, fill: 'none', stroke: s.color, 'stroke-width': 2.2, 'stroke-dasharray': s.dashed ? '6 4' : null,
          'data-series': s.name,
        }));
      }
      if (s.markers) {
        for (const [px, py] of s.points) {
          if (py === null) continue;
          root.append(svg('circle', { cx: x(px), cy: y(py), r: 3.5, fill: s.color, 'data-series': s.name }));
        }
      }
    }
  }

  function niceTimeTicks(min, max) {
    const span = max - min;
    const steps = [60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 7 * 86400e3, 30 * 86400e3];
    const step = steps.find((s) => span / s <= 5) || steps[steps.length - 1];
    const ticks = [];
    for (let t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push(t);
    return ticks;
  }

  // Bars, one group per category; series: [{name, color, values}]
  function barChart(container, opts) {
    const n = opts.categories.length;
    const values = opts.series.flatMap((s) => s.values);
    if (!n || !values.some((v) => v > 0)) { empty(container, opts.emptyText); return; }
    const { root, plot } = frame(container, opts);
    const yMax = Math.max(...values) || 1;
    const band = (plot.x1 - plot.x0) / n;
    const y = (v) => plot.y0 - (v / yMax) * (plot.y0 - plot.y1);
    const x = (i) => plot.x0 + band * (i + 0.5);
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor((plot.x1 - plot.x0) / 70))));
    const xTicks = opts.categories.map((_, i) => i).filter((i) => i % every === 0);
    axes(root, plot, x, y, xTicks, niceTicks(0, yMax, 4), (i) => opts.categories[i], opts.yFmt, opts.xLabel, opts.yLabel);
    const groups = opts.series.length;
    const inner = Math.max(1, (band * 0.84) / groups);
    opts.series.forEach((s, g) => {
      s.values.forEach((v, i) => {
        if (!(v > 0)) return;
        const left = plot.x0 + band * i + band * 0.08 + inner * g;
        root.append(svg('rect', {
          x: left.toFixed(1), y: y(v).toFixed(1), width: Math.max(1, inner - 0.5).toFixed(1),
          height: Math.max(0.5, plot.y0 - y(v)).toFixed(1), fill: s.color, 'data-series': s.name,
          'data-value': s.raw ? s.raw[i] : v,
        }));
      });
    });
  }

  // --------------------------------------------------------------------------------------- rendering

  function tile(metric, label, value, sub) {
    return el('div', { class: 'tile' },
      el('dt', { text: label }),
      el('dd', { 'data-metric': metric }, value, sub ? el('span', { class: 'sub', text: sub }) : null));
  }

  function renderTiles(o) {
    const s = o.stats;
    const q = o.quality;
    const lastHour = state.timeline ? lastHourRate(state.timeline) : null;
    const tiles = [
      tile('labels', 'Labels (budgeted)', fmtInt(s.labels), s.budget === null ? 'no budget' : `of ${fmtInt(s.budget)}`),
      tile('budget-remaining', 'Budget left', s.budget_remaining === null ? '∞' : fmtInt(s.budget_remaining),
        s.budget ? pct(s.labels / s.budget) + ' spent' : null),
      tile('labels-per-hour', 'Labels per hour', lastHour === null ? '–' : fmt(lastHour, 1), 'in the current bucket'),
      tile('pairs-waiting', 'Pairs waiting', fmtInt(o.queue.pairs_waiting), `${fmtInt(o.queue.pairs_queued)} never handed out`),
      tile('live-leases', 'Live leases', fmtInt(o.leases.live), null),
      tile('alpha', "Krippendorff's α", fmt(q.krippendorff_alpha, 3), q.stale ? 'stale: new labels since' : 'as aggregated'),
      tile('kappa', "Fleiss' κ", fmt(q.fleiss_kappa.kappa, 3), `${fmtInt(q.pairs_with_overlap)} pairs with overlap`),
      tile('review', 'Needing review', fmtInt(q.pairs_needing_review), null),
    ];
    document.getElementById('tiles').replaceChildren(...tiles);
  }

  function lastHourRate(t) {
    return t.labels_per_hour.length ? t.labels_per_hour[t.labels_per_hour.length - 1] : null;
  }

  function bucketEnds(t) {
    return t.starts.map((s) => new Date(s).getTime() + t.bucket_seconds * 1000);
  }

  function renderTimeline(t) {
    const ends = bucketEnds(t);
    const span = ends.length ? ends[ends.length - 1] - new Date(t.starts[0]).getTime() : 0;
    const xFmt = (ms) => shortTime(ms, span);
    const burnSeries = [{ name: 'Budgeted labels stored', color: COLORS.blue, points: ends.map((x, i) => [x, t.cumulative_labels[i]]) }];
    if (t.budget_remaining) {
      burnSeries.unshift({ name: 'Budget left', color: COLORS.orange, points: ends.map((x, i) => [x, t.budget_remaining[i]]) });
    }
    const burn = document.getElementById('chart-burn');
    lineChart(burn, {
      title: 'Budget burn-down',
      description: t.budget === null
        ? 'Budgeted labels stored over time; the project has no budget.'
        : `Budget left and labels stored over time, against a budget of ${t.budget} labels.`,
      series: burnSeries, legend: burnSeries, time: true, xFmt, yFmt: fmtInt, yLabel: 'labels',
      xPad: t.bucket_seconds * 1000, emptyText: 'No labels yet.',
    });
    if (burn.querySelector('svg')) {
      dataTable(burn, 'Burn-down per bucket', ['Bucket end (UTC)', 'Labels', 'Cumulative', 'Budget left'],
        ends.map((x, i) => [time(new Date(x).toISOString()), fmtInt(t.labels[i]), fmtInt(t.cumulative_labels[i]),
          t.budget_remaining ? fmtInt(t.budget_remaining[i]) : '–']));
    }

    const rate = document.getElementById('chart-rate');
    barChart(rate, {
      title: 'Labels per hour',
      description: `All labels, ordinary and gold, per hour in buckets of ${t.bucket_seconds / 60} minutes.`,
      categories: t.starts.map((s) => shortTime(new Date(s).getTime(), span)),
      series: [{ name: 'Labels per hour', color: COLORS.blue, values: t.labels_per_hour }],
      yFmt: (v) => fmt(v, v < 10 ? 1 : 0), yLabel: 'labels / hour', emptyText: 'No labels yet.',
    });
    if (rate.querySelector('svg')) {
      dataTable(rate, 'Labels per hour per bucket', ['Bucket start (UTC)', 'Budgeted', 'Gold', 'Per hour'],
        t.starts.map((s, i) => [time(s), fmtInt(t.labels[i]), fmtInt(t.gold_labels[i]), fmt(t.labels_per_hour[i], 2)]));
    }

    const agreement = document.getElementById('chart-agreement');
    const at = t.agreement.map((p) => new Date(p.at).getTime());
    const agreementSeries = [
      { name: "Krippendorff's α", color: COLORS.purple, markers: true, points: t.agreement.map((p, i) => [at[i], p.krippendorff_alpha]) },
      { name: "Fleiss' κ", color: COLORS.green, dashed: true, markers: true, points: t.agreement.map((p, i) => [at[i], p.fleiss_kappa]) },
    ];
    lineChart(agreement, {
      title: 'Agreement over time',
      description: "Krippendorff's alpha and Fleiss' kappa of the labels stored by each moment.",
      series: agreementSeries, legend: agreementSeries, time: true, xFmt, yFmt: (v) => fmt(v, 1), yMin: 0, yMax: 1,
      xPad: t.bucket_seconds * 1000, emptyText: 'No agreement yet: it needs pairs with two or more labels.',
    });
    if (agreement.querySelector('svg')) {
      dataTable(agreement, 'Agreement over time', ['At (UTC)', 'Labels', 'Overlapping pairs', 'α', 'κ'],
        t.agreement.map((p) => [time(p.at), fmtInt(p.labels), fmtInt(p.pairs_with_overlap), fmt(p.krippendorff_alpha, 3), fmt(p.fleiss_kappa, 3)]));
    }
  }

  function renderSimilarity(s) {
    const container = document.getElementById('chart-similarity');
    document.getElementById('similarity-note').textContent = s.prompts_sampled
      ? `Cosine similarity of all ${fmtInt(s.candidate_pairs)} candidate pairs against the ${fmtInt(s.selected_pairs)} ` +
        `chosen ones, over ${fmtInt(s.prompts_sampled)} of ${fmtInt(s.prompts)} paired prompts` +
        (s.prompts_skipped ? ` (${fmtInt(s.prompts_skipped)} without vectors left out)` : '') + '.'
      : '';
    const nonzero = s.candidates.map((c, i) => c + s.selected[i]).map((v, i) => (v > 0 ? i : -1)).filter((i) => i >= 0);
    if (!nonzero.length) { empty(container, 'No paired prompts yet.'); return; }
    const lo = nonzero[0]; const hi = nonzero[nonzero.length - 1];
    const share = (counts, total) => counts.slice(lo, hi + 1).map((c) => (total ? (100 * c) / total : 0));
    const series = [
      { name: `All candidate pairs (mean ${fmt(s.candidate_mean, 3)})`, color: COLORS.grey, values: share(s.candidates, s.candidate_pairs), raw: s.candidates.slice(lo, hi + 1) },
      { name: `Chosen pairs (mean ${fmt(s.selected_mean, 3)})`, color: COLORS.orange, values: share(s.selected, s.selected_pairs), raw: s.selected.slice(lo, hi + 1) },
    ];
    barChart(container, {
      title: 'Cosine similarity: candidates against chosen pairs',
      description: 'Share of each group of pairs per similarity bin.',
      categories: s.edges.slice(lo, hi + 1).map((e) => e.toFixed(2)),
      series, legend: series, yFmt: (v) => v.toFixed(0) + '%', yLabel: '% of pairs', xLabel: 'cosine similarity',
      emptyText: 'No paired prompts yet.',
    });
    dataTable(container, 'Pairs per similarity bin', ['Similarity', 'Candidates', 'Chosen'],
      s.candidates.map((c, i) => [i, c]).filter(([i]) => i >= lo && i <= hi)
        .map(([i, c]) => [`${s.edges[i].toFixed(2)} – ${s.edges[i + 1].toFixed(2)}`, fmtInt(c), fmtInt(s.selected[i])]));
  }

  function renderReward(fits) {
    const container = document.getElementById('chart-reward');
    const series = [
      { name: 'Cross-validated accuracy', color: COLORS.blue, markers: true, points: fits.map((f) => [f.labels_used, f.cv_accuracy]) },
      { name: 'Chance', color: COLORS.grey, dashed: true, points: fits.length ? [[fits[0].labels_used, 0.5], [fits[fits.length - 1].labels_used, 0.5]] : [] },
    ];
    lineChart(container, {
      title: 'Reward-model accuracy against labels used',
      description: 'Cross-validated accuracy of each reward-model version against the labels it was fitted on.',
      series, legend: series, xFmt: fmtInt, yFmt: (v) => fmt(v, 1), yMin: 0.4, yMax: 1, xLabel: 'labels used',
      emptyText: 'No reward model fitted yet.',
    });
    if (container.querySelector('svg')) {
      dataTable(container, 'Reward-model versions', ['Version', 'Labels used', 'Pairs used', 'CV accuracy', 'CV log-loss'],
        fits.map((f) => [`v${f.version}`, fmtInt(f.labels_used), fmtInt(f.pairs_used), fmt(f.cv_accuracy, 3), fmt(f.cv_log_loss, 3)]));
    }
  }

  function table(id, caption, headers, rows, emptyText) {
    const container = document.getElementById(id);
    if (!rows.length) { empty(container, emptyText); return; }
    const t = el('table', {}, el('caption', { class: 'visually-hidden', text: caption }));
    const head = el('tr', {});
    headers.forEach((h) => head.append(el('th', { scope: 'col', class: h.num ? 'num' : null, text: h.label })));
    t.append(el('thead', {}, head));
    const body = el('tbody', {});
    for (const row of rows) {
      const tr = el('tr', {});
      row.forEach((cell, n) => {
        const td = el('td', { class: headers[n].num ? 'num' : null });
        td.append(cell instanceof Node ? cell : String(cell));
        tr.append(td);
      });
      body.append(tr);
    }
    t.append(body);
    container.replaceChildren(t);
  }

  function renderQueue(o) {
    const q = o.queue;
    table('queue', 'Queue', [{ label: 'State' }, { label: 'Count', num: true }], [
      ['Pairs waiting (claimable now)', fmtInt(q.pairs_waiting)],
      ['Never handed out', fmtInt(q.pairs_queued)],
      ['In progress', fmtInt(q.pairs_in_progress)],
      ['Done', fmtInt(q.pairs_done)],
      ['Redundant (held back)', fmtInt(q.pairs_redundant)],
      ['Gold checks', fmtInt(q.gold_pairs)],
      ['Open slots', fmtInt(q.slots_open)],
      ['Leased slots', fmtInt(q.slots_leased)],
      ['Budget: pairs left to release', q.budget_pairs_left === null ? '∞' : fmtInt(q.budget_pairs_left)],
    ], '');
    const rows = o.leases.soonest.map((l) => [l.annotator, time(l.claimed_at).slice(11),
      el('span', { 'data-expires': l.expires_at, text: countdown(l.expires_at) }), fmtInt(l.renewals)]);
    table('leases', `Live leases: ${o.leases.live}`, [{ label: 'Annotator' }, { label: 'Claimed' }, { label: 'Expires in', num: true }, { label: 'Renewals', num: true }],
      rows, 'No live leases.');
  }

  function countdown(iso) {
    const left = Math.max(0, Math.round((new Date(iso).getTime() - (Date.now() + state.skew)) / 1000));
    return left >= 60 ? `${Math.floor(left / 60)} min ${String(left % 60).padStart(2, '0')} s` : `${left} s`;
  }

  function renderAnnotators(rows) {
    table('annotators', 'Annotators', [
      { label: 'Annotator' }, { label: 'Labels', num: true }, { label: 'Median s / label', num: true },
      { label: 'Skips', num: true }, { label: 'Skip rate', num: true }, { label: 'Gold accuracy', num: true },
      { label: 'Agreement with majority', num: true }, { label: 'Reliability', num: true },
    ], rows.map((a) => [
      a.flagged ? el('span', {}, a.annotator + ' ', el('span', { class: 'flag', text: '(flagged)' })) : a.annotator,
      fmtInt(a.labels), fmt(a.median_seconds_per_label, 1), fmtInt(a.skips), pct(a.skip_rate),
      a.gold_answered ? `${pct(a.gold_accuracy)} of ${a.gold_answered}` : '–', pct(a.agreement_with_majority), fmt(a.reliability, 3),
    ]), 'No labels yet.');
  }

  function renderExports(o) {
    const schedule = document.getElementById('schedule');
    if (o.schedule) {
      const s = o.schedule.schedule;
      const every = s.every_seconds ? `every ${s.every_seconds / 3600 >= 1 ? s.every_seconds / 3600 + ' h' : s.every_seconds / 60 + ' min'}` : `cron ${s.cron} (UTC)`;
      const parts = [`Scheduled ${every}, ${s.format}${s.incremental ? ', incremental' : ''}; next at ${time(s.next_run_at)}.`];
      schedule.replaceChildren(parts.join(' '));
      if (o.schedule.last_export && o.schedule.last_export.file_url) {
        schedule.append(' ', el('a', { href: o.schedule.last_export.file_url, text: 'Download the last scheduled export' }));
      }
      if (s.last_error) schedule.append(el('span', { class: 'flag', text: ` Last slot: ${s.last_error}` }));
    } else {
      schedule.textContent = 'No export schedule.';
    }
    table('exports', 'Exports', [
      { label: 'Created' }, { label: 'Status' }, { label: 'Format' }, { label: 'Rows', num: true }, { label: 'Download' },
    ], o.exports.map((x) => [
      time(x.created_at), x.status, `${x.format}${x.compression !== 'none' ? ' + ' + x.compression : ''}${x.incremental ? ' (incremental)' : ''}`,
      fmtInt(x.rows),
      x.file_url
        ? el('span', {}, el('a', { href: x.file_url, text: 'data' }), ' · ', el('a', { href: x.manifest_url, text: 'manifest' }))
        : '–',
    ]), 'No exports yet.');
  }

  function renderAll() {
    if (state.overview) {
      renderTiles(state.overview);
      renderQueue(state.overview);
      renderAnnotators(state.overview.annotators);
      renderExports(state.overview);
      renderReward(state.overview.reward_model);
    }
    if (state.timeline) renderTimeline(state.timeline);
    if (state.similarity) renderSimilarity(state.similarity);
  }

  // ---------------------------------------------------------------------------------------- loading

  async function loadNumbers() {
    const id = state.project;
    const base = `/v1/projects/${encodeURIComponent(id)}/dashboard`;
    const [overview, timeline] = await Promise.all([api(base), api(base + '/timeline')]);
    if (id !== state.project) return;
    state.overview = overview;
    state.timeline = timeline;
    state.skew = new Date(overview.generated_at).getTime() - Date.now();
    renderAll();
    setStatus(`Updated ${time(overview.generated_at)}; refreshes every ${REFRESH_MS / 1000} s.`);
    document.body.dataset.loaded = 'numbers';
  }

  async function loadSimilarity() {
    const id = state.project;
    document.getElementById('similarity-note').textContent = 'Computing the similarity histogram…';
    const similarity = await api(`/v1/projects/${encodeURIComponent(id)}/dashboard/similarity`);
    if (id !== state.project) return;
    state.similarity = similarity;
    renderSimilarity(similarity);
    document.body.dataset.similarity = 'loaded';
  }

  function fail(error) {
    if (error instanceof HttpError && error.status === 401) { showSignIn(); return; }
    setStatus(`Could not load the dashboard: ${error.message}`, true);
  }

  async function selectProject(id) {
    state.project = id;
    state.overview = state.timeline = state.similarity = null;
    const url = new URL(window.location.href);
    url.searchParams.set('project', id);
    window.history.replaceState(null, '', url);
    setStatus('Loading…');
    delete document.body.dataset.loaded;
    delete document.body.dataset.similarity;
    await Promise.all([loadNumbers().catch(fail), loadSimilarity().catch(fail)]);
  }

  function schedule() {
    if (state.timer) return;
    state.timer = setInterval(() => {
      if (!document.hidden && state.project) loadNumbers().catch(fail);
    }, REFRESH_MS);
    setInterval(() => {
      for (const span of document.querySelectorAll('[data-expires]')) span.textContent = countdown(span.dataset.expires);
    }, 1000);
  }

  function showSignIn() {
    // The shared sign-in page (app/web), back here afterwards.
    window.location.replace('/sign-in?next=' + encodeURIComponent('/dashboard' + window.location.search));
  }

  async function signOut() {
    try {
      await api('/v1/session', { method: 'DELETE', headers: { 'X-CSRF-Token': csrfToken(), Accept: 'application/json' } });
    } finally {
      window.location.replace('/sign-in?next=/dashboard');
    }
  }

  async function listProjects() {
    const projects = [];
    let cursor = null;
    do {
      const page = await api('/v1/projects?limit=200' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      projects.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && projects.length < 1000);
    return projects;
  }

  async function start() {
    // No CSRF cookie: no session either; ask for a key without a request the server would refuse.
    if (!csrfToken()) { showSignIn(); return; }
    let me;
    try { me = await api('/v1/me'); } catch (e) { fail(e); return; }
    if (me.role !== 'admin' && me.role !== 'data_team') {
      document.getElementById('not-allowed').hidden = false;
      setStatus('');
      return;
    }
    document.getElementById('who').textContent = `Signed in as ${me.name} (${me.role.replace('_', ' ')})`;
    document.getElementById('controls').hidden = false;
    const projects = await listProjects().catch((e) => { fail(e); return null; });
    if (projects === null) return;
    if (!projects.length) { setStatus('No projects yet: create one with POST /v1/projects.'); return; }
    const select = document.getElementById('project');
    select.replaceChildren(...projects.map((p) => el('option', { value: p.id, text: `${p.name}${p.status === 'archived' ? ' (archived)' : ''}` })));
    const wanted = new URL(window.location.href).searchParams.get('project');
    const chosen = projects.some((p) => p.id === wanted) ? wanted : projects[projects.length - 1].id;
    select.value = chosen;
    document.getElementById('board').hidden = false;
    schedule();
    await selectProject(chosen);
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderAll, 150);
  });

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('sign-out').addEventListener('click', signOut);
    document.getElementById('refresh').addEventListener('click', () => {
      if (state.project) Promise.all([loadNumbers().catch(fail), loadSimilarity().catch(fail)]);
    });
    document.getElementById('project').addEventListener('change', (e) => selectProject(e.target.value));
    start();
  });
})();
