// 番号発券機 (R1): one touch issues a ticket, shows it and prints it.
"use strict";
(function () {
  const M = window.Madoguchi;
  const area = document.getElementById("categories");
  const offline = document.getElementById("offline");
  const dialog = document.getElementById("issued");
  let lang = "ja";
  let busy = false;
  let closeTimer = null;

  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll(".t[data-lang]").forEach((el) => { el.hidden = el.dataset.lang !== lang; });
    document.querySelectorAll("[data-set-lang]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.setLang === lang)));
  }

  document.querySelectorAll("[data-set-lang]").forEach((b) =>
    b.addEventListener("click", () => { lang = b.dataset.setLang; applyLang(); }));

  async function refresh() {
    if (busy) return;
    try {
      await M.swap(area);
      offline.hidden = true;
      applyLang();
    } catch (_) {
      offline.hidden = false;
    }
  }

  function name(names) { return (names && (names[lang] || names.ja)) || ""; }

  function failed(body) {
    const e = body && body.error;
    const box = document.getElementById("kiosk-error");
    box.textContent = e ? (lang === "ja" ? e.message_ja : e.message_en) : "エラーが起きました。職員に声をおかけください";
    box.hidden = false;
    setTimeout(() => { box.hidden = true; }, 15000);
  }

  function show(t, printedByNetwork) {
    const detail = {
      ja: `前に ${t.people_ahead} 人・約 ${t.expected_wait_min} 分`,
      en: `${t.people_ahead} ahead · about ${t.expected_wait_min} min`,
      zh: `前面 ${t.people_ahead} 人・约 ${t.expected_wait_min} 分钟`,
      ko: `앞에 ${t.people_ahead}명 · 약 ${t.expected_wait_min}분`,
    }[lang];
    document.getElementById("issued-number").textContent = t.number;
    document.getElementById("issued-detail").textContent = `${name(t.category_name)} — ${detail}`;
    document.getElementById("ticket-category").textContent = t.category_name.ja;
    document.getElementById("ticket-number").textContent = t.number;
    document.getElementById("ticket-meta").textContent =
      `${t.date} ${t.time} 発券 ・ 前に ${t.people_ahead} 人 ・ 約 ${t.expected_wait_min} 分`;
    document.getElementById("ticket-qr").innerHTML = t.qr_svg;
    dialog.hidden = false;
    document.getElementById("issued-close").focus();
    // Dialog-free when the kiosk browser runs with --kiosk-printing; a kiosk
    // with a network printer has already printed.
    if (!printedByNetwork) window.print();
    clearTimeout(closeTimer);
    closeTimer = setTimeout(close, 15000);
  }

  function close() {
    dialog.hidden = true;
    busy = false;
    refresh();
  }
  document.getElementById("issued-close").addEventListener("click", close);
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !dialog.hidden) close(); });

  async function issue(category) {
    if (busy) return;
    busy = true;
    area.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    // The same id on every retry: the server answers a retry with the
    // ticket it already issued, never a second one.
    const requestId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const r = await M.post("/api/commands", { command: "issue_ticket", category, request_id: requestId });
        offline.hidden = true;
        if (r.ok && r.body.issued) { show(r.body.issued, r.body.printed === "network"); return; }
        failed(r.body);
        break;
      } catch (_) {
        offline.hidden = false;
        await new Promise((res) => setTimeout(res, 1000 * (attempt + 1)));
      }
    }
    busy = false;
    refresh();
  }

  area.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-category]");
    if (b && !b.disabled) issue(b.dataset.category);
  });

  applyLang();
  setInterval(refresh, 10000);
})();
