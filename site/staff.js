// 呼出端末 (R8, R13): one key per action; every action shows its outcome.
"use strict";
(function () {
  const M = window.Madoguchi;
  const station = document.querySelector(".station");
  const counter = Number(station.dataset.counter);
  // The counter this browser works at: the shared menu's 「職員用画面」 on
  // other pages comes back here (common.js; pages-rt10 N0).
  try { localStorage.setItem("madoguchi-counter", String(counter)); } catch (_) { /* the menu asks instead */ }
  const panel = document.getElementById("panel");
  const outcome = document.getElementById("outcome");
  const history = document.getElementById("history");
  let inFlight = null; // the action being sent
  let pending = null; // one different action pressed meanwhile
  // One call path: a call (N, G, R) pressed again within this time after
  // the first one was answered is the same press twice, never a second call.
  const REPEAT_MS = 1000;
  let lastDone = { action: null, at: 0 };
  // The sign-in ended (an administrator ended it, or it ran out): nothing
  // more is sent; every key says so until the clerk signs in again.
  let signedOut = false;
  const LOGIN_AGAIN = `/login?next=${encodeURIComponent(`/staff?counter=${counter}`)}`;
  // Each action's name as on its button, for "「完了」は行われていません".
  const NAMES = {
    call_next: "次を呼出", recall: "再呼出", start_service: "対応開始", complete: "完了", mark_absent: "不在",
    hold: "保留", transfer: "回付", call_number: "番号指定呼出", toggle_counter: "窓口を開く／閉じる",
    cancel: "取消", search: "履歴検索", return_absent: "不在から戻す", resume: "保留を再開",
    open_day: "業務開始", close_day: "業務終了", reopen_issuing: "受付を再開",
  };

  const HINT = outcome.textContent;
  function say(text, bad) {
    outcome.textContent = text;
    outcome.classList.toggle("bad", !!bad);
  }

  function current() {
    const el = document.getElementById("current-number");
    return el && el.dataset.number ? Number(el.dataset.number) : null;
  }

  function numberInput() {
    const v = document.getElementById("number-input").value.trim();
    return /^[0-9]{1,6}$/.test(v) ? Number(v) : null;
  }

  function tags() {
    return Array.from(document.querySelectorAll('input[name="tag"]:checked')).map((i) => i.value);
  }

  // The office's business date as the server's office clock has it: the
  // browser's own date may be another time zone's (or simply wrong).
  function today() {
    const el = panel.querySelector(".current");
    return el ? el.dataset.today : "";
  }

  function build(action, number) {
    switch (action) {
      // 受付終了 → 受付を再開 (issue 19): `number` carries the category here.
      case "reopen_issuing": return { command: "reopen_issuing", category: number };
      case "call_next": case "recall": case "start_service": case "mark_absent":
        return { command: action, counter };
      case "complete": return { command: "complete", counter, tags: tags() };
      case "hold": {
        // The memo typed for a hold goes with the hold (pages-rt9 F1: it
        // stayed in the field and went with the next visitor's transfer).
        const note = document.getElementById("transfer-note").value.trim();
        return { command: "hold", counter, note: note || undefined };
      }
      case "cancel": {
        // 取消: the current ticket leaves the office's hands for good, so
        // the clerk confirms it by its number.
        const n = current();
        if (n === null) return "取り消す番号がありません（対応中の番号だけを取り消せます）";
        return confirm(`${n} 番を取り消しますか？ 取り消した番号は呼び出せなくなり、表示からも消えます。`)
          ? { command: "cancel", number: n } : null;
      }
      case "transfer": {
        const n = current();
        if (n === null) return "回付する番号がありません";
        const note = document.getElementById("transfer-note").value.trim();
        return { command: "transfer", number: n, to: document.getElementById("transfer-to").value, tags: tags(), note: note || undefined };
      }
      case "call_number": {
        const n = numberInput();
        return n === null ? "番号を入力してください" : { command: "call_number", counter, number: n };
      }
      case "return_absent": case "resume": {
        // From the list's button, or the number typed in the number field.
        const n = number !== undefined ? number : numberInput();
        if (n === null) return "番号を入力してください";
        return action === "resume" ? { command: "resume", number: n, counter } : { command: "return_absent", number: n };
      }
      case "toggle_counter": {
        const open = M.flag(panel.querySelector(".current"), "open");
        // A counter with a number still called or in service is not
        // closed: the visitor would be left at a closed counter. Said
        // before anything is sent (outside tester pages-rt7, F9).
        const n = current();
        if (open && n !== null) return stillCalledNow(n);
        return open ? { command: "close_counter", counter } : { command: "open_counter", counter };
      }
      case "open_day": return { command: "open_day", date: today() };
      case "close_day": return closeDay();
    }
    return null;
  }

  // The page's copy may be older than the office: the same counter open in
  // a second browser finished the number a moment ago (outside tester
  // pages-rt12 F1: O was refused on the stale copy and the counter stayed
  // open). Asked of the server before refusing; if it cannot be asked, the
  // page's copy decides.
  async function stillCalledNow(n) {
    try {
      const r = await fetch("/api/status", { credentials: "same-origin", cache: "no-cache" });
      const st = r.ok ? await r.json() : null;
      const here = st && st.counters.find((c) => c.number === counter);
      if (here && (here.ticket === null || here.ticket === undefined)) {
        return { command: "close_counter", counter };
      }
      if (here) return stillCalled(here.ticket);
    } catch (_) { /* the page's copy decides */ }
    return stillCalled(n);
  }

  // Why the counter was not closed, and what to do with the number still
  // called there.
  function stillCalled(n) {
    return `窓口は閉じていません。${n} 番をまだ呼び出し中（または対応中）です。` +
      `先に ${n} 番を「完了」（C）・「不在」（A）・「保留」（H）・「回付」（T）のどれかで済ませてから、もう一度 O で閉じてください。`;
  }

  // 業務終了 states, before the admin confirms, how many visitors are not
  // yet done in the whole office (they all become 未対応): read from the
  // server at the moment of asking (outside tester pages-rt7, F9).
  async function closeDay() {
    let head = "";
    try {
      const r = await fetch("/api/status", { credentials: "same-origin", cache: "no-cache" });
      if (r.status === 401) return "ログインが終了しています。もう一度ログインしてから、やり直してください。";
      const st = r.ok ? await r.json() : null;
      if (st) {
        const waiting = st.queues.reduce((sum, q) => sum + (q.waiting || 0), 0);
        const called = st.counters.filter((c) => c.ticket !== null && c.ticket !== undefined).length;
        const absent = (st.absent || []).length;
        const heldN = (st.held || []).length;
        const all = waiting + called + absent + heldN;
        head = all === 0
          ? "まだ終わっていない方はいません。"
          : `まだ終わっていない方が ${all} 人います（待っている方 ${waiting} 人・呼出中または対応中 ${called} 人・不在 ${absent} 人・保留 ${heldN} 人）。終了すると、この方々は全員「未対応」になり、今日はもう呼び出せません。`;
      }
    } catch (_) { head = ""; }
    if (!head) head = "待っている人数を確かめられませんでした。待っている方・呼出中の方は、終了すると全員「未対応」になります。";
    return confirm(`本日の業務を終了しますか？\n\n${head}`) ? { command: "close_day" } : null;
  }

  // Actions that act on the number typed in 番号.
  const NEEDS_NUMBER = ["call_number", "return_absent", "resume", "search"];
  // The action waiting for a number in 番号 (after 「番号を入力してください」
  // or a refusal): Enter in the field does it with exactly what is typed.
  let armed = null;
  function armNumber(action) {
    armed = action;
    const i = document.getElementById("number-input");
    i.focus();
    i.select();
  }
  const done = {
    call_next: (r) => `${r.ticket} 番を呼び出しました`,
    call_number: (r) => `${r.ticket} 番を呼び出しました`,
    recall: (r) => `${r.ticket} 番を再呼出しました`,
    start_service: (r) => `${r.ticket} 番の対応を開始しました`,
    complete: (r) => `${r.ticket} 番を完了しました`,
    mark_absent: (r) => `${r.ticket} 番を不在にしました`,
    hold: (r) => `${r.ticket} 番を保留にしました`,
    transfer: (r) => `${r.ticket} 番を回付しました`,
    cancel: (r) => `${r.ticket} 番を取り消しました`,
    return_absent: (r) => `${r.ticket} 番を待ち列に戻しました`,
    resume: (r) => `${r.ticket} 番の保留を解除しました`,
    open_counter: () => "窓口を開きました",
    close_counter: () => "窓口を閉じました。この窓口ではもう呼び出しません。待っている方は、同じ受付区分のほかの開いている窓口で呼ばれます（開き直すときは O）",
    open_day: () => "業務を開始しました",
    close_day: () => "業務を終了しました",
    reopen_issuing: () => "受付を再開しました",
  };

  // The sign-in has ended: say so where the clerk looks, say that the
  // action pressed was not done, and offer the way back to this counter.
  function endedSignIn(action) {
    signedOut = true;
    pending = null;
    const what = action && NAMES[action] ? `「${NAMES[action]}」は行われていません。` : "";
    const box = document.getElementById("signed-out");
    box.hidden = false;
    document.getElementById("signed-out-text").textContent =
      `ログインが終了しています（管理者が終了したか、しばらく操作がなかったため）。${what}もう一度ログインしてから、やり直してください。`;
    say(`ログインが終了しています。${what}`, true);
    document.getElementById("login-again").focus();
  }

  // As common.js sends it: the highest epoch this browser has seen.
  function epoch() {
    try { return localStorage.getItem("madoguchi-epoch") || "0"; } catch (_) { return "0"; }
  }

  // What identifies a control in the panel across a redraw (a button by
  // what it does and to which number or category).
  function controlKey(el) {
    if (!el.dataset.action) return null;
    return ["action", "number", "category"].map((k) => `${k}=${el.dataset[k] || ""}`).join(";");
  }

  // The panel is redrawn from the server every few seconds and after each
  // action, and only when it changed: a redraw takes the screen reader's
  // place. Focus inside it (受付を再開, 戻す, 再開) is put back on the same
  // control. If that one is gone (the visitor was returned), it goes to
  // the heading of the part it was in (不在・保留, the queue), never to
  // another visitor's button — an Enter meant for the first must not
  // return the next one — and never to the page body.
  async function refreshPanel() {
    if (signedOut) return false;
    const res = await fetch(panel.dataset.fragment, { credentials: "same-origin", headers: { "Madoguchi-Epoch": epoch() } });
    const h = res.headers.get("Madoguchi-Epoch");
    if (h !== null) M.learn(parseInt(h, 10));
    if (res.status === 401) { endedSignIn(null); return false; }
    if (!res.ok) throw new Error("fragment " + res.status);
    const next = document.createElement("template");
    next.innerHTML = await res.text();
    if (next.innerHTML === panel.innerHTML) return true;
    const el = document.activeElement;
    const inside = el && el !== panel && panel.contains(el);
    const key = inside ? controlKey(el) : null;
    const part = inside && el.closest("[data-part]") ? el.closest("[data-part]").dataset.part : null;
    panel.replaceChildren(next.content);
    if (inside) {
      const same = key && Array.from(panel.querySelectorAll("[data-action]")).find((b) => controlKey(b) === key);
      // The part's heading takes focus without entering the Tab order.
      const region = part && panel.querySelector(`[data-part="${CSS.escape(part)}"]`);
      const heading = region && region.querySelector("h2[tabindex], h3[tabindex]");
      (same || heading || station).focus();
    }
    applyHold();
    return true;
  }

  // While the server holds commands (issue 24: #command-hold stands in
  // the panel), every button the hold refuses is disabled, its key too;
  // 履歴検索 only reads and stays. They come back with the next redraw
  // after the hold ends (outside tester failover-rt5 F5).
  function held() { return panel.querySelector("#command-hold") !== null; }
  // The key line above says so while held (it listed keys that do
  // nothing), and says when they work again.
  let wasHeld = false;
  function applyHold() {
    const h = held();
    if (h !== wasHeld) {
      say(h ? "番号の発行と窓口の操作を止めています。再開するまで、ボタンとキーは使えません（F 履歴検索は使えます）。"
        : "受付を再開しました。ボタンとキーが使えます。", h);
      wasHeld = h;
    }
    document.querySelectorAll("button[data-action]").forEach((b) => {
      if (b.dataset.action !== "search") b.disabled = h;
    });
  }
  applyHold();

  async function act(action, number) {
    if (signedOut) { endedSignIn(action); return; }
    if (action !== "search" && held()) {
      say("番号の発行と窓口の操作を止めています（上の赤い表示をご覧ください）。管理者が再開するまでお待ちください。", true);
      return;
    }
    if (action === "search") return search();
    if (inFlight) {
      // A double press never sends twice; a different key waits its turn.
      if (action !== inFlight) pending = [action, number];
      return;
    }
    if (["call_next", "call_number", "recall"].includes(action) && lastDone.action === action &&
        Date.now() - lastDone.at < REPEAT_MS) return;
    inFlight = action;
    let body;
    try { body = await build(action, number); } finally { inFlight = null; }
    if (body === null) return;
    if (typeof body === "string") {
      say(body, true);
      // An action that needs a number and has none: the field takes focus
      // and the next Enter does this action with what is typed there.
      if (NEEDS_NUMBER.includes(action) && number === undefined && numberInput() === null) armNumber(action);
      return;
    }
    if (M.replacedServer()) { say(M.REPLACED_JA, true); return; }
    inFlight = action;
    station.setAttribute("aria-busy", "true");
    let ok = false;
    try {
      const r = await M.post("/api/commands", body);
      if (r.status === 401) {
        endedSignIn(action);
        return;
      }
      if (r.ok) {
        ok = true;
        say(done[body.command] ? done[body.command](r.body) : "完了しました");
        // Done from the number field: back to the station, so the next
        // letter is an action key again, not typed into the field.
        if (document.activeElement && document.activeElement.id === "number-input") station.focus();
        // A number typed for one action is not left for the next one.
        if (number === undefined && ["call_number", "return_absent", "resume"].includes(action)) {
          document.getElementById("number-input").value = "";
        }
        if (body.command === "complete" || body.command === "transfer" || body.command === "hold") {
          document.querySelectorAll('input[name="tag"]').forEach((i) => { i.checked = false; });
          document.getElementById("transfer-note").value = "";
        }
      } else {
        const code = r.body && r.body.error ? r.body.error.code : "";
        if (body.command === "close_counter" && code === "counter_busy") {
          // The number called here came in between: said as above.
          const m = /([0-9]+) 番の対応中/.exec(M.message(r.body));
          say(m ? stillCalled(Number(m[1])) : M.message(r.body), true);
        } else if (code === "day_not_open" && M.flag(panel.querySelector("[data-part=current]"), "dayClosed")) {
          // After 業務終了 the refusal is said as the panel says the day:
          // ended, and who can open it again (outside tester pages-rt11 R5:
          // 「本日の業務が開始されていません」 under 「本日の業務は終了しました」).
          say(`本日の業務は終了しています。「${NAMES[action] || "この操作"}」は行われていません。続けるときは、管理者が管理画面の「本日の受付を再開」で再開します（番号は続きから）。`, true);
        } else {
          say(M.message(r.body), true);
        }
        // A number action refused (not waiting, not absent…): back to the
        // field with the number selected, to type the right one.
        if (number === undefined && NEEDS_NUMBER.includes(action)) armNumber(action);
      }
      await refreshPanel();
    } catch (_) {
      say("サーバーに接続できません。もう一度お試しください", true);
    } finally {
      // Only a call that was made guards against its double press: a
      // refused one may be corrected and sent again at once.
      if (ok) lastDone = { action, at: Date.now() };
      inFlight = null;
      station.removeAttribute("aria-busy");
    }
    if (pending) {
      const [next, n] = pending;
      pending = null;
      act(next, n);
    }
  }

  // Times on the office's clock (its UTC offset from the configuration),
  // whatever time zone this browser is set to (issue 18).
  const offsetS = Number(station.dataset.utcOffset || 32400);
  function officeTime(at) {
    const ms = typeof at === "number" ? at : Date.parse(at);
    const d = new Date(ms + offsetS * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  }
  const STATUS_JA = { waiting: "待ち", called: "呼出中", serving: "対応中", absent: "不在", held: "保留中",
    done: "完了", cancelled: "取消", unserved: "未対応" };
  function queueName(id) {
    const o = document.querySelector(`option[value="${CSS.escape(id)}"]`);
    return o ? o.textContent.trim() : id;
  }
  function escape(t) {
    const d = document.createElement("div");
    d.textContent = t;
    return d.innerHTML;
  }

  async function search() {
    const n = numberInput();
    if (n === null) { say("番号を入力してください", true); armNumber("search"); return; }
    const r = await fetch(`/api/tickets/${n}`, { credentials: "same-origin" });
    if (r.status === 401) { endedSignIn("search"); return; }
    const body = await r.json().catch(() => null);
    if (!r.ok) { say(M.message(body), true); return; }
    const labels = { issued: "発券", called: "呼出", recalled: "再呼出", started: "対応開始", completed: "完了", absent: "不在",
      returned: "不在から復帰", transferred: "回付", held: "保留", resumed: "保留解除", cancelled: "取消", unserved: "未対応" };
    const rows = body.history.map((s) => {
      // A transfer names the counter and the queue it went to (pages-rt8 F7).
      const parts = [];
      if (s.counter) parts.push(`${s.counter} 番窓口`);
      if (s.to) parts.push(`→ ${queueName(s.to)}`);
      else if (!s.counter && s.queue) parts.push(queueName(s.queue));
      // The 内部メモ of a transfer or hold (pages-rt8 F9): staff only.
      const note = s.note ? `<br><span class="history-note">内部メモ: ${escape(s.note)}</span>` : "";
      return `<li>${officeTime(s.at)} ${labels[s.step] || s.step} ${escape(parts.join(" "))}${note}</li>`;
    });
    // A waiting number says in which queue it waits (pages-rt8 F7).
    const st = body.status.status;
    const status = (STATUS_JA[st] || st) + (st === "waiting" && body.queue ? `・${queueName(body.queue)}` : "");
    history.innerHTML = `<h2>${body.number} 番の履歴（${status}）</h2><ol>${rows.join("")}</ol>`;
    history.hidden = false;
    say(`${body.number} 番の履歴を表示しました`);
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (b) act(b.dataset.action, b.dataset.category || (b.dataset.number ? Number(b.dataset.number) : undefined));
  });

  // Keys (docs/manual-ja.md §3): one letter per action anywhere on the
  // page except in a text field: what is typed there goes to the field
  // only (typing "10o" in 番号 once closed the counter). Enter in 番号 never
  // sends a command (a number typed to return an absent visitor must not
  // be called): it keeps the number and leaves the field, so the next
  // letter (G, B, E, F) acts on it. Escape leaves any field for the
  // station, so no field traps the keyboard. Tag boxes take Space and let
  // the action keys through.
  function isTextField(el) {
    if (!el) return false;
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(el.type);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const el = document.activeElement;
    if (ev.key === "Escape") {
      armed = null;
      if (el && el !== document.body) { ev.preventDefault(); el.blur(); station.focus(); }
      return;
    }
    const inNumber = el && el.id === "number-input";
    if (ev.key === "Enter" && inNumber) {
      ev.preventDefault();
      const n = numberInput();
      // A wrong entry keeps focus in the field, to be typed again.
      if (n === null) { say("番号を数字で入力してください", true); return; }
      if (armed) {
        // The action that asked for a number, with the number typed now
        // and nothing else (never the next in line, never a number from
        // before the error).
        const a = armed;
        armed = null;
        act(a);
        return;
      }
      station.focus();
      say(`${n} 番: G 呼出・B 不在から戻す・E 保留を再開・F 履歴検索`);
      return;
    }
    if (isTextField(el)) return;
    if (ev.key === "/") { ev.preventDefault(); const i = document.getElementById("number-input"); i.focus(); i.select(); return; }
    if (ev.key.length !== 1 || !/[a-z]/i.test(ev.key)) return;
    const b = document.querySelector(`[data-key="${ev.key.toLowerCase()}"]`);
    if (!b) return;
    ev.preventDefault();
    if (b.dataset.focus) document.querySelector(b.dataset.focus).focus();
    else if (b.dataset.action) act(b.dataset.action);
    else b.click();
  });

  // Typing in 番号 after an error clears it (the red words were about
  // what was there before); focus stays in the field.
  document.getElementById("number-input").addEventListener("input", () => {
    if (!outcome.classList.contains("bad")) return;
    const n = numberInput();
    say(armed && n !== null ? `${n} 番: Enter で「${NAMES[armed]}」・Esc でやめる` : HINT);
  });
  // Leaving the field (Tab, a click elsewhere) drops the waiting action.
  document.getElementById("number-input").addEventListener("blur", () => { armed = null; });

  // Signing out keeps the way back to this counter.
  document.getElementById("logout").addEventListener("click", async () => {
    await M.post("/api/logout", {}).catch(() => null);
    location.href = LOGIN_AGAIN;
  });

  setInterval(() => { if (!inFlight && !signedOut) refreshPanel().catch(() => say("サーバーに接続できません", true)); }, 5000);
})();
