// Shared by every page: the CSRF token, JSON requests, fragment swaps.
"use strict";

window.Madoguchi = (function () {
  function csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }

  // The office's epoch (issue 24): raised by each promotion of a standby.
  // The page remembers the highest it has seen and sends it back; a server
  // whose epoch is older was replaced, and this page must not use it. A
  // fresh enrolment (a new office, or the same one set up again) forgets it.
  // A promoted server also gives the proof of its epoch (a MAC devices
  // cannot make): the page keeps it and sends it back, and only a proof
  // makes an old primary stop (a bare number is ignored there).
  const EPOCH_KEY = "madoguchi-epoch";
  const PROOF_KEY = "madoguchi-epoch-proof";
  function knownProof() {
    try { return localStorage.getItem(PROOF_KEY) || ""; } catch (_) { return ""; }
  }
  // The highest numbers the page has seen given on the latest business
  // day, by any server ("2026-12-07 idou=1004,koseki=12"): a primary
  // restored from a backup raises its numbers above them before it issues
  // again (outside tester failover-rt5 F4).
  const ISSUED_KEY = "madoguchi-issued";
  function parseIssued(v) {
    const m = /^(\d{4}-\d{2}-\d{2})(?: (.*))?$/.exec((v || "").trim());
    if (!m) return null;
    const highest = {};
    for (const part of (m[2] || "").split(",")) {
      const [q, n] = part.split("=");
      if (q && /^[A-Za-z0-9_-]{1,64}$/.test(q) && /^\d+$/.test(n || "")) highest[q] = parseInt(n, 10);
    }
    return { date: m[1], highest };
  }
  function issuedText(i) {
    return i.date + " " + Object.keys(i.highest).sort().map((q) => q + "=" + i.highest[q]).join(",");
  }
  function knownIssued() {
    try { return localStorage.getItem(ISSUED_KEY) || ""; } catch (_) { return ""; }
  }
  function learnIssued(v) {
    const got = parseIssued(v);
    if (!got) return;
    const old = parseIssued(knownIssued());
    let next = got;
    if (old && old.date > got.date) next = old;
    else if (old && old.date === got.date) {
      next = { date: got.date, highest: Object.assign({}, old.highest) };
      for (const q of Object.keys(got.highest)) next.highest[q] = Math.max(next.highest[q] || 0, got.highest[q]);
    }
    try { localStorage.setItem(ISSUED_KEY, issuedText(next)); } catch (_) { /* this page only */ }
  }
  function epochHeaders() {
    const h = { "Madoguchi-Epoch": String(knownEpoch()) };
    const p = knownProof();
    if (p) h["Madoguchi-Epoch-Proof"] = p;
    const i = knownIssued();
    if (i) h["Madoguchi-Issued"] = i;
    return h;
  }
  let serverEpoch = null;
  function knownEpoch() {
    try { return parseInt(localStorage.getItem(EPOCH_KEY) || "0", 10) || 0; } catch (_) { return 0; }
  }
  if (location.hash === "#enrolled") {
    try { localStorage.removeItem(EPOCH_KEY); localStorage.removeItem(PROOF_KEY); localStorage.removeItem(ISSUED_KEY); } catch (_) { /* private mode */ }
    history.replaceState(null, "", location.pathname + location.search);
  }
  function learn(n) {
    if (!Number.isInteger(n)) return;
    serverEpoch = n;
    if (n > knownEpoch()) { try { localStorage.setItem(EPOCH_KEY, String(n)); } catch (_) { /* kept for this page only */ } }
  }
  function learnFrom(res) {
    const h = res.headers.get("Madoguchi-Epoch");
    if (h !== null) learn(parseInt(h, 10));
    const p = res.headers.get("Madoguchi-Epoch-Proof");
    if (p !== null && parseInt(p, 10) >= knownEpoch()) { try { localStorage.setItem(PROOF_KEY, p); } catch (_) { /* this page only */ } }
    learnIssued(res.headers.get("Madoguchi-Issued"));
  }
  // This server is older than the office the page has seen: a primary that
  // was replaced by its standby.
  function replacedServer() { return serverEpoch !== null && serverEpoch < knownEpoch(); }
  const REPLACED_JA = "この機械は主機ではなくなりました（予備機が主機に昇格しました）。番号は新しい主機で発行してください。職員に声をおかけください";
  const REPLACED_EN = "This server is no longer the primary (its standby was promoted). Please ask a member of staff.";

  // POSTs JSON; resolves to {ok, status, body}. Network failures reject.
  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json", "X-CSRF-Token": csrf() }, epochHeaders()),
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    learnFrom(res);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, body: data };
  }

  // Replaces an element's content with its server-rendered fragment.
  // `apply`, when given, lays the new markup over the old itself (the
  // kiosk keeps its focused button, issue 18); otherwise it replaces it.
  async function swap(el, apply) {
    const res = await fetch(el.dataset.fragment, { credentials: "same-origin", headers: epochHeaders() });
    learnFrom(res);
    if (res.status === 401 || res.status === 403) { location.reload(); return false; }
    if (!res.ok) throw new Error("fragment " + res.status);
    const html = await res.text();
    if (apply) apply(html); else el.innerHTML = html;
    return true;
  }

  // Reads a yes/no state attribute (data-open, data-day-open…) the one
  // way every page does: the templates write "true"/"false", and an older
  // fragment's "True"/"False" (Jinja's bool) reads the same.
  function flag(el, name) {
    const v = el && el.dataset ? el.dataset[name] : undefined;
    return typeof v === "string" && ["true", "1", "yes"].includes(v.trim().toLowerCase());
  }

  // ふりがな for names that come from the configuration (queue names):
  // words a visitor meets at a ward office, longest first. A word not in
  // the list stays as it is; the text is never parsed as HTML.
  const READINGS = [
    ["住民票", "じゅうみんひょう"], ["戸籍", "こせき"], ["届出", "とどけで"], ["証明", "しょうめい"],
    ["発行", "はっこう"], ["受付", "うけつけ"], ["住民", "じゅうみん"], ["異動", "いどう"],
    ["交付", "こうふ"], ["転入", "てんにゅう"], ["転出", "てんしゅつ"], ["転居", "てんきょ"],
    ["印鑑", "いんかん"], ["登録", "とうろく"], ["手続", "てつづき"], ["相談", "そうだん"],
    ["番号", "ばんごう"], ["窓口", "まどぐち"], ["書類", "しょるい"], ["写", "うつ"], ["届", "とどけ"],
  ].sort((a, b) => b[0].length - a[0].length);

  function ruby(el) {
    const text = el.textContent.trim();
    el.textContent = "";
    let i = 0;
    let plain = "";
    const flush = () => { if (plain) { el.appendChild(document.createTextNode(plain)); plain = ""; } };
    while (i < text.length) {
      const hit = READINGS.find(([w]) => text.startsWith(w, i));
      if (hit) {
        flush();
        const r = document.createElement("ruby");
        r.appendChild(document.createTextNode(hit[0]));
        const rt = document.createElement("rt");
        rt.textContent = hit[1];
        r.appendChild(rt);
        el.appendChild(r);
        i += hit[0].length;
      } else {
        plain += text[i];
        i += 1;
      }
    }
    flush();
  }

  function message(body) {
    if (body && body.error) return body.error.message_ja + "（" + body.error.message_en + "）";
    return "エラーが起きました";
  }

  return { csrf, post, swap, message, flag, ruby, learn, replacedServer, REPLACED_JA, REPLACED_EN };
})();

// ログアウト in the shared menu of every signed-in page (layouts/menu.html;
// pages-rt8 F10), and 「ログアウトして別のアカウントでログイン」 on a refusal
// page (pages-rt9 F6: it only went to /login and the session stayed): a
// POST with the CSRF token ends the session first. The staff station's
// own L key does the same (staff.js).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".menu-logout").forEach((out) => {
    out.addEventListener("click", async () => {
      out.disabled = true;
      try { await window.Madoguchi.post("/api/logout", {}); } catch (_) { /* signed out or server gone: the login page says which */ }
      location.href = "/login";
    });
  });
});

// 「職員用画面」 (issue 18, R11; outside tester pages-rt10 N0): the menu on
// every page but the station links plain /staff, which asks which counter;
// the station remembers its counter in this browser (staff.js), and the
// link goes straight back to that counter — never silently counter 1.
document.addEventListener("DOMContentLoaded", () => {
  let n = "";
  try { n = localStorage.getItem("madoguchi-counter") || ""; } catch (_) { /* asked on /staff */ }
  if (!/^\d{1,5}$/.test(n)) return;
  document.querySelectorAll('a[href="/staff"]').forEach((a) => {
    a.setAttribute("href", "/staff?counter=" + n);
  });
});
