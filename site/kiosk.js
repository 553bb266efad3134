// 番号発券機 (R1): one touch issues a ticket, shows it and prints it.
"use strict";
(function () {
  const M = window.Madoguchi;
  const area = document.getElementById("categories");
  const offline = document.getElementById("offline");
  const dialog = document.getElementById("issued");
  const screen = document.querySelector(".kiosk-screen");
  let lang = "ja";
  let busy = false;
  let closeTimer = null;

  // "easy" is やさしい日本語: Japanese (lang="ja") in short sentences with
  // ふりがな; names from the configuration get theirs from M.ruby.
  function applyLang() {
    document.documentElement.lang = lang === "easy" ? "ja" : lang;
    document.querySelectorAll(".t[data-ruby]:not([data-rubied])").forEach((el) => { M.ruby(el); el.dataset.rubied = ""; });
    document.querySelectorAll(".t[data-lang]").forEach((el) => { el.hidden = el.dataset.lang !== lang; });
    document.querySelectorAll("[data-set-lang]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.setLang === lang)));
  }

  document.querySelectorAll("[data-set-lang]").forEach((b) =>
    b.addEventListener("click", () => { lang = b.dataset.setLang; applyLang(); }));

  // A server older than the office's epoch was replaced by its standby
  // (issue 24): say so and issue nothing here.
  function replaced() {
    if (!M.replacedServer()) return false;
    const box = document.getElementById("kiosk-error");
    box.textContent = lang === "ja" || lang === "easy" ? M.REPLACED_JA : M.REPLACED_EN;
    box.hidden = false;
    area.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    return true;
  }

  // The waiting figures are drawn again every ~10 s. The new buttons are
  // laid over the old ones (issue 18, R1; outside tester pages-rt11 R1:
  // the buttons were replaced, keyboard focus fell to the page body and
  // Enter then issued nothing): a category's button stays the same
  // element, its attributes are set and its contents replaced only when
  // they changed, so a focused button keeps focus and a press survives the
  // redraw. Anything else (the notice that nothing can be issued) is
  // replaced. If a button still had to move, focus goes back to the same
  // category — never to another category's button, where an Enter meant
  // for the first would issue the wrong ticket.
  const drawn = new Map(); // category → the markup its button was last drawn from
  function patch(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    const focused = document.activeElement;
    const inButton = focused && area.contains(focused) ? focused.closest("button[data-category]") : null;
    const focusedCategory = inButton ? inButton.dataset.category : null;
    const old = new Map();
    area.querySelectorAll(":scope > button[data-category]").forEach((b) => old.set(b.dataset.category, b));
    const next = Array.from(t.content.childNodes).map((n) => {
      if (n.nodeType !== Node.ELEMENT_NODE || n.tagName !== "BUTTON" || !n.dataset.category) return n;
      const id = n.dataset.category;
      const b = old.get(id);
      const markup = n.innerHTML;
      const same = drawn.get(id) === markup;
      drawn.set(id, markup);
      if (!b) return n;
      old.delete(id);
      for (const a of Array.from(b.attributes)) if (!n.hasAttribute(a.name)) b.removeAttribute(a.name);
      for (const a of Array.from(n.attributes)) if (b.getAttribute(a.name) !== a.value) b.setAttribute(a.name, a.value);
      if (!same) b.replaceChildren(...Array.from(n.childNodes));
      return b;
    });
    // A category no longer offered goes; the rest keep their places.
    Array.from(area.childNodes).forEach((n) => { if (!next.includes(n)) n.remove(); });
    next.forEach((n, i) => { if (area.childNodes[i] !== n) area.insertBefore(n, area.childNodes[i] || null); });
    if (focusedCategory && document.activeElement !== focused) {
      const same = area.querySelector(`button[data-category="${CSS.escape(focusedCategory)}"]`);
      (same && !same.disabled ? same : document.querySelector("[data-set-lang]")).focus();
    }
  }

  async function refresh() {
    if (busy) return;
    try {
      await M.swap(area, patch);
      offline.hidden = true;
      applyLang();
      replaced();
    } catch (_) {
      offline.hidden = false;
    }
  }

  function name(names) { return (names && (names[lang] || names.ja)) || ""; }

  // Focus goes back where it was when the dialog closes (the button that
  // was touched, found again after the buttons are redrawn).
  let returnTo = null;

  // The refusals of an office that holds its commands (fence.rs).
  const HOLDS = ["restored_unconfirmed", "unverified_epoch_claim", "revoked_standby_unconfirmed", "no_standby_lease"];

  function failed(body, category) {
    const e = body && body.error;
    const box = document.getElementById("kiosk-error");
    // 受付終了 (issue 19): why and when to come, in the visitor's language
    // (the button carries the words in every language).
    const closed = e && e.code === "issuing_closed" &&
      document.querySelector(`#closed-${category} .t[data-lang="${lang}"]`);
    // The server's refusals are in Japanese and English; a visitor reading
    // Chinese or Korean gets it in their language (the buttons are drawn
    // again after this, with a held server's banner in every language).
    const OTHER = { zh: "现在无法取号。请咨询工作人员。", ko: "지금은 번호표를 발급할 수 없습니다. 직원에게 문의해 주세요." };
    // A held office's reason is written for staff and the admin (issue
    // 24): the visitor is also told whom to ask.
    const ask = e && HOLDS.includes(e.code) ? "職員に声をおかけください。" : "";
    box.textContent = closed ? closed.textContent
      : e ? (lang === "ja" ? e.message_ja + ask : OTHER[lang] || e.message_en) : "エラーが起きました。職員に声をおかけください";
    box.hidden = false;
    setTimeout(() => { box.hidden = true; }, 15000);
  }

  // The paper the visitor keeps, in the words they chose: やさしい日本語
  // with ふりがな when chosen (outside tester pages-rt8 F4: it printed
  // standard Japanese), the words of the mobile ticket page
  // (layouts/display_ticket.html); otherwise 受付番号 with English beside.
  const TICKET_LABEL = document.getElementById("ticket-label").innerHTML;
  const TICKET_HINT = document.getElementById("ticket-hint").innerHTML;
  function printTicket(t, w) {
    const easy = lang === "easy";
    const el = (id) => document.getElementById(id);
    el("ticket-label").innerHTML = easy ? "あなたの <ruby>番号<rt>ばんごう</rt></ruby>" : TICKET_LABEL;
    el("ticket-number").textContent = t.number;
    el("ticket-category").textContent = t.category_name.ja;
    if (easy) M.ruby(el("ticket-category"));
    el("ticket-time").textContent = easy ? `${t.date} ${t.time}` : `${t.date} ${t.time} 発券`;
    el("ticket-meta").textContent = easy ? `まえに ${t.people_ahead} にん` : `前に ${t.people_ahead} 人`;
    const wait = el("ticket-wait");
    if (easy && w.kind === "range") {
      wait.innerHTML = "<span class=\"word\"><ruby>待<rt>ま</rt></ruby>つ</span> <ruby>時間<rt>じかん</rt></ruby> ";
      wait.append(w.easy || "");
    } else if (easy) {
      wait.textContent = w.easy || "";
    } else {
      wait.textContent = w.kind === "range" ? `予想待ち時間 ${w.ja}` : (w.ja || "");
    }
    el("ticket-hint").innerHTML = easy
      ? "QRコードで いまの じゅんばんが わかります"
      : TICKET_HINT;
  }

  function show(t, printedByNetwork) {
    // The wait recorded at issue, as a range in words or plainly no
    // estimate yet (issue 19); the server words it in every language.
    const w = t.wait_words || {};
    const detail = {
      ja: `前に ${t.people_ahead} 人・${w.ja}`,
      en: `${t.people_ahead} ahead · ${w.en}`,
      zh: `前面 ${t.people_ahead} 人・${w.zh}`,
      ko: `앞에 ${t.people_ahead}명 · ${w.ko}`,
      easy: `まえに ${t.people_ahead} にん・${w.easy}`,
    }[lang];
    document.getElementById("issued-number").textContent = t.number;
    const d = document.getElementById("issued-detail");
    d.textContent = "";
    const cat = document.createElement("span");
    cat.textContent = name(t.category_name);
    if (lang === "easy") M.ruby(cat);
    // The words after the category break only at their spaces: 「30 ふん」
    // was split 「30 ふ / ん」 (outside tester pages-rt9 F4; style.css .words).
    const words = document.createElement("span");
    words.className = "words";
    // A number keeps its unit: 「35 ふん」, 「1 にん」 are each one
    // unbreakable .word (outside tester pages-rt11 R5: 「35 / ふん」).
    detail.split(/([0-9]+(?:〜[0-9]+)? [^\s・（）()·]+)/).forEach((part, i) => {
      if (!part) return;
      if (i % 2 === 0) { words.append(part); return; }
      const w = document.createElement("span");
      w.className = "word";
      w.textContent = part;
      words.append(w);
    });
    d.append(cat, " — ", words);
    printTicket(t, w);
    document.getElementById("ticket-qr").innerHTML = t.qr_svg;
    dialog.hidden = false;
    screen.inert = true;
    document.getElementById("issued-close").focus();
    // Dialog-free when the kiosk browser runs with --kiosk-printing; a kiosk
    // with a network printer has already printed.
    if (!printedByNetwork) window.print();
    clearTimeout(closeTimer);
    closeTimer = setTimeout(close, 15000);
  }

  // Focus back on the category button that was pressed (the same element:
  // the redraws keep it), or on the language choice if it is gone.
  function focusBack() {
    const back = returnTo && area.querySelector(`button[data-category="${CSS.escape(returnTo)}"]`);
    if (back && !back.disabled) back.focus();
    else if (returnTo) document.querySelector("[data-set-lang]").focus();
    returnTo = null;
  }

  // Closed by OK, Escape or by itself after 15 s: focus goes back to the
  // button that opened it (outside tester pages-rt11 R1: after the close by
  // itself it was on the page body by the next redraw).
  async function close() {
    if (dialog.hidden) return;
    clearTimeout(closeTimer);
    dialog.hidden = true;
    screen.inert = false;
    busy = false;
    await refresh();
    focusBack();
  }
  document.getElementById("issued-close").addEventListener("click", close);
  // The dialog is modal: Tab and Shift+Tab stay inside it, Escape closes it.
  document.addEventListener("keydown", (ev) => {
    if (dialog.hidden) return;
    if (ev.key === "Escape") { ev.preventDefault(); close(); return; }
    if (ev.key !== "Tab") return;
    const inside = Array.from(dialog.querySelectorAll("button, [href], input, [tabindex]:not([tabindex='-1'])"));
    if (inside.length === 0) return;
    const first = inside[0];
    const last = inside[inside.length - 1];
    if (!dialog.contains(document.activeElement)) { ev.preventDefault(); first.focus(); }
    else if (ev.shiftKey && document.activeElement === first) { ev.preventDefault(); last.focus(); }
    else if (!ev.shiftKey && document.activeElement === last) { ev.preventDefault(); first.focus(); }
  });
  // A touch outside the box (or focus that escaped) comes back inside.
  document.addEventListener("focusin", (ev) => {
    if (!dialog.hidden && !dialog.contains(ev.target)) document.getElementById("issued-close").focus();
  });

  async function issue(category) {
    if (busy || replaced()) return;
    busy = true;
    returnTo = category;
    area.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    // The same id on every retry: the server answers a retry with the
    // ticket it already issued, never a second one.
    const requestId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        // The chosen language rides to the ticket's QR code, so the phone
        // page opens in it (outside tester pages-rt9 F4).
        const path = lang === "ja" ? "/api/commands" : `/api/commands?lang=${encodeURIComponent(lang)}`;
        const r = await M.post(path, { command: "issue_ticket", category, request_id: requestId });
        offline.hidden = true;
        if (r.ok && r.body.issued) { show(r.body.issued, r.body.printed === "network"); return; }
        failed(r.body, category);
        break;
      } catch (_) {
        offline.hidden = false;
        await new Promise((res) => setTimeout(res, 1000 * (attempt + 1)));
      }
    }
    busy = false;
    // Refused: the buttons come back enabled, focus on the one pressed
    // (disabling it while asking had taken focus from it).
    await refresh();
    focusBack();
  }

  area.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-category]");
    if (b && !b.disabled) issue(b.dataset.category);
  });

  applyLang();
  setInterval(refresh, 10000);
})();
