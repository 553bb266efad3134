// Displays: live updates over WebSocket, polling the static JSON (with
// ETag) while the socket is down, a visible "connection lost" state when
// nothing fresh has arrived for a while, and a chime plus spoken calls that
// queue up — a new call never cuts off the one being spoken.
"use strict";
(function () {
  const body = document.body;
  const topic = body.dataset.topic;
  const staleAfter = Number(body.dataset.staleAfter || 30) * 1000;
  const surface = document.getElementById("surface");
  const staleBanner = document.getElementById("stale");
  const live = document.getElementById("announce");
  let lastFresh = Date.now();
  let etag = null;
  let socket = null;
  let backoff = 1000;
  let known = null; // call ids already on screen

  const bannerWords = Array.from(staleBanner.querySelectorAll("p")).map((p) => p.textContent);
  function banner(lines) {
    staleBanner.querySelectorAll("p").forEach((p, i) => { p.textContent = lines[i] || ""; });
  }
  function fresh() {
    lastFresh = Date.now();
    if (body.classList.contains("stale")) {
      body.classList.remove("stale");
      staleBanner.hidden = true;
      banner(bannerWords);
    }
  }
  // The server took this screen's enrolment away (revoked, or the
  // session ended): clear the numbers at once and say why, instead of
  // showing old numbers until the stale timer runs out (F11).
  function refused() {
    banner(["この表示機の登録は取り消されました", "呼び出し番号は職員にお尋ねください",
      "This display is no longer enrolled. Please ask a member of staff for the numbers being called."]);
    body.classList.add("stale");
    staleBanner.hidden = false;
    lastFresh = 0;
  }

  setInterval(() => {
    if (Date.now() - lastFresh > staleAfter && !body.classList.contains("stale")) {
      body.classList.add("stale");
      staleBanner.hidden = false;
    }
  }, 1000);

  // ---- announcements ---------------------------------------------------
  const queue = [];
  let speaking = false;
  let audio = null;

  function chime(done) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const now = audio.currentTime;
      [880, 660].forEach((f, i) => {
        const o = audio.createOscillator();
        const g = audio.createGain();
        o.frequency.value = f;
        g.gain.setValueAtTime(0.0001, now + i * 0.45);
        g.gain.exponentialRampToValueAtTime(0.3, now + i * 0.45 + 0.05);
        g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.45 + 0.4);
        o.connect(g).connect(audio.destination);
        o.start(now + i * 0.45);
        o.stop(now + i * 0.45 + 0.45);
      });
    } catch (_) { /* no audio device: the screen still shows the call */ }
    setTimeout(done, 950);
  }

  function say(text, lang, done) {
    if (!("speechSynthesis" in window)) { done(); return; }
    const u = new SpeechSynthesisUtterance(text);
    u.lang = lang;
    u.rate = 0.9;
    u.onend = done;
    u.onerror = done;
    window.speechSynthesis.speak(u);
  }

  function next() {
    if (speaking || queue.length === 0) return;
    speaking = true;
    const [number, counter, recall] = queue.shift();
    const ja = recall
      ? `受付番号 ${number} 番の方、もう一度お呼びします。${counter} 番窓口へお越しください`
      : `受付番号 ${number} 番の方、${counter} 番窓口へお越しください`;
    const en = recall
      ? `Calling again: number ${number}, please go to counter ${counter}.`
      : `Number ${number}, please go to counter ${counter}.`;
    live.textContent = ja;
    chime(() => say(ja, "ja-JP", () => say(en, "en-US", () => { speaking = false; next(); })));
  }

  // One announcement rule: a call is announced when its id
  // (number:counter:last call time) first appears. A call and a recall
  // (再呼出) give a new time; a start of service (対応開始) keeps it, so it
  // is never announced again. Every announcement is counted on the body
  // (data-announced) for the tests and for a technician's console.
  function announceNew() {
    const els = Array.from(surface.querySelectorAll("[data-call]"));
    const ids = els.map((e) => e.dataset.call);
    if (known !== null) {
      els.filter((e) => !known.has(e.dataset.call)).reverse().forEach((e) => {
        const [number, counter] = e.dataset.call.split(":");
        queue.push([number, counter, e.hasAttribute("data-recall")]);
        body.dataset.announced = String(Number(body.dataset.announced || 0) + 1);
        body.dataset.lastAnnounced = `${number}:${counter}:${e.hasAttribute("data-recall") ? "recall" : "call"}`;
      });
      next();
    }
    known = new Set(ids);
  }

  // ---- the mobile ticket page (R2) --------------------------------------
  // The visitor's number is in the URL fragment (#2026-11-26/1001): it
  // never leaves the phone. Their place comes from the public lists.
  let lang = (navigator.language || "ja").slice(0, 2);
  if (!["ja", "en", "zh", "ko"].includes(lang)) lang = "ja";
  // The language chosen at the kiosk ends the QR code's fragment
  // (…/1001/<tag>/easy; outside tester pages-rt9 F4): the page opens in it.
  const chosen = /\/(easy|en|zh|ko)$/.exec(decodeURIComponent(location.hash));
  if (chosen) lang = chosen[1];
  // "easy" is やさしい日本語 (lang="ja"), chosen with its button.
  const words = {
    ja: { cancelled: "この番号札は取り消されました。ご不明な点は職員に声をおかけください。", unserved: "本日の受付は、お手続きが終わる前に終了しました。申し訳ありません。職員に声をおかけいただくか、次の開庁日にお越しください。", finished: "受付は終わりました。ご来庁ありがとうございました。", notfound: "この番号は本日の受付に見つかりません。番号札の日付と番号をお確かめください。", held: "お手続きの途中です。職員の案内をお待ちください。", notstarted: "本日の受付はまだ始まっていません。", people: (n) => `${n} 人`, min: (n) => `約 ${n} 分`, num: (n) => `${n} 番`, passed: "お呼びした番号を過ぎています。職員に声をおかけください。", called: (c) => `お呼びしています。${c} 番窓口へお越しください。`, waiting: "お待ちください。順番が近づいたらこの画面でお知らせします。", unknown: "番号札の QR コードからこのページを開いてください。", closed: "本日の受付は終了しました。" },
    en: { cancelled: "This ticket was cancelled. Please speak to a member of staff if you have any questions.", unserved: "Today's reception closed before your business was done. We are sorry. Please speak to a member of staff, or come again on the next opening day.", finished: "Your visit is complete. Thank you for coming.", notfound: "This number is not in today's reception. Please check the date and number on your ticket.", held: "Your business is in progress. Please wait for a member of staff.", notstarted: "Reception has not opened yet today.", people: (n) => `${n}`, min: (n) => `about ${n} min`, num: (n) => `No. ${n}`, passed: "Your number has passed. Please speak to a member of staff.", called: (c) => `You are being called: please go to counter ${c}.`, waiting: "Please wait; this page follows the queue.", unknown: "Open this page from the QR code on your ticket.", closed: "Reception has closed for today." },
    zh: { cancelled: "此号码票已被取消。如有疑问，请咨询工作人员。", unserved: "今天的受理在您的手续办完之前已结束。非常抱歉。请咨询工作人员，或在下一个办公日再来。", finished: "您的办理已结束。感谢您的光临。", notfound: "在今天的受理中找不到此号码。请确认号码票上的日期和号码。", held: "您的手续正在办理中。请等候工作人员的指引。", notstarted: "今天的受理尚未开始。", people: (n) => `${n} 人`, min: (n) => `约 ${n} 分钟`, num: (n) => `${n} 号`, passed: "您的号码已过。请咨询工作人员。", called: (c) => `正在叫您的号码，请到 ${c} 号窗口。`, waiting: "请稍候。", unknown: "请通过号码票上的二维码打开此页面。", closed: "今天的受理已结束。" },
    easy: { cancelled: "この ばんごうの かみは とりけされました。わからない ときは しょくいんに はなして ください。", unserved: "きょうの うけつけは、あなたの てつづきが おわる まえに おわりました。ごめんなさい。しょくいんに はなすか、つぎの ひに また きて ください。", finished: "あなたの てつづきは おわりました。ありがとう ございました。", notfound: "この ばんごうは きょうの うけつけに ありません。かみの ひづけと ばんごうを みて ください。", held: "てつづきの とちゅうです。しょくいんを まって ください。", notstarted: "きょうの うけつけは まだ はじまって いません。", people: (n) => `${n} にん`, min: (n) => `だいたい ${n} ふん`, num: (n) => `${n} ばん`, passed: "あなたの ばんごうは もう よばれました。しょくいんに はなして ください。", called: (c) => `よんでいます。${c} ばんの まどぐちに きて ください。`, waiting: "まって ください。じゅんばんが ちかく なったら、この がめんで しらせます。", unknown: "ばんごうの かみの QR コードから、この ページを ひらいて ください。", closed: "きょうの うけつけは おわりました。" },
    ko: { cancelled: "이 번호표는 취소되었습니다. 궁금한 점은 직원에게 문의해 주세요.", unserved: "수속이 끝나기 전에 오늘 접수가 종료되었습니다. 죄송합니다. 직원에게 문의하시거나 다음 업무일에 다시 방문해 주세요.", finished: "접수가 끝났습니다. 방문해 주셔서 감사합니다.", notfound: "오늘 접수에서 이 번호를 찾을 수 없습니다. 번호표의 날짜와 번호를 확인해 주세요.", held: "수속이 진행 중입니다. 직원의 안내를 기다려 주세요.", notstarted: "오늘 접수는 아직 시작되지 않았습니다.", people: (n) => `${n}명`, min: (n) => `약 ${n}분`, num: (n) => `${n}번`, passed: "번호가 지났습니다. 직원에게 문의해 주세요.", called: (c) => `호출 중입니다. ${c}번 창구로 와 주세요.`, waiting: "잠시 기다려 주세요.", unknown: "번호표의 QR 코드로 이 페이지를 열어 주세요.", closed: "오늘 접수는 종료되었습니다." },
  };

  function ticketView(data) {
    const page = surface.querySelector(".ticket-page");
    if (!page || !data) return;
    document.documentElement.lang = lang === "easy" ? "ja" : lang;
    page.querySelectorAll(".t[data-lang]").forEach((el) => { el.hidden = el.dataset.lang !== lang; });
    // やさしい日本語 is spaced: its lines break at the spaces (display.css).
    page.classList.toggle("easy", lang === "easy");
    const w = words[lang];
    const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
    // date/number, and the ticket's secret tag where the QR code gives it
    // (issue 20): without the tag the queue shows as ever, but the relay
    // takes no push subscription.
    const m = /^#?(\d{4}-\d{2}-\d{2})\/(\d{1,6})(?:\/([0-9a-f]{16}))?(?:\/(?:easy|en|zh|ko))?$/.exec(decodeURIComponent(location.hash));
    visitOver = false;
    notifyRender(m ? `${m[1]}/${Number(m[2])}` : null, m && m[3]);
    if (!m) { set("mine-state", w.unknown); return; }
    const number = Number(m[2]);
    set("mine", w.num(number));
    const q = data.queues.find((x) => x.numbers && number >= x.numbers[0] && number <= x.numbers[1]);
    const passedIn = (x) => Array.isArray(x.passed) && x.passed.includes(number);
    const listed = (x, key) => Array.isArray(x[key]) && x[key].includes(number);
    const inQueue = data.queues.find((x) => x.waiting.some((e) => e[0] === number) || x.serving.some((e) => e[0] === number) || passedIn(x) || listed(x, "finished") || listed(x, "held")) || q;
    // An office that lists finished numbers lists every number issued
    // today that is not waiting, called or passed (browser red team F4):
    // a number in none of its lists was never issued today.
    const knowsAll = data.queues.some((x) => Array.isArray(x.finished));
    const notOpen = data.day_state === "not_started" ? w.notstarted : w.closed;
    if (!inQueue) { set("mine-state", knowsAll ? (data.day_open ? w.notfound : notOpen) : w.unknown); return; }
    set("mine-queue", inQueue.name[lang] || inQueue.name.ja);
    // ふりがな on the category's kanji in やさしい日本語, as the kiosk gives
    // them (outside tester pages-rt9 F4; the readings are common.js's).
    const mq = document.getElementById("mine-queue");
    if (lang === "easy" && mq && window.Madoguchi && window.Madoguchi.ruby) window.Madoguchi.ruby(mq);
    set("mine-serving", inQueue.serving.length ? inQueue.serving.map((e) => e[0]).join("、") : "—");
    const atCounter = inQueue.serving.find((e) => e[0] === number);
    const pos = inQueue.waiting.findIndex((e) => e[0] === number);
    if (m[1] !== data.date) { set("mine-state", notOpen); set("mine-ahead", "—"); set("mine-wait", "—"); return; }
    if (atCounter) { set("mine-state", w.called(atCounter[1])); set("mine-ahead", w.people(0)); set("mine-wait", "—"); noticeCheck({ kind: "called", number, counter: String(atCounter[1]) }); return; }
    // [number, minutes, words ja, en, zh, ko, やさしい日本語]: the range, or
    // why there is none (too little history, no counter open), in the
    // server's words — their one source (renderer surfaces::wait_words);
    // an office too old to send them gives minutes only. No estimate: no
    // minutes for the notices to act on.
    const basis = inQueue.wait_basis || "estimate";
    const estimated = basis === "estimate";
    const column = { ja: 2, en: 3, zh: 4, ko: 5, easy: 6 }[lang];
    const rangeText = (e) => e[column] || (estimated ? w.min(e[1]) : "—");
    if (pos >= 0) { set("mine-state", w.waiting); set("mine-ahead", w.people(pos)); set("mine-wait", rangeText(inQueue.waiting[pos])); noticeCheck({ kind: "waiting", number, ahead: pos, minutes: estimated ? Number(inQueue.waiting[pos][1]) : NaN, wait: estimated ? rangeText(inQueue.waiting[pos]) : null }); return; }
    set("mine-ahead", "—");
    set("mine-wait", "—");
    // A visit over (or a day closed) has nothing left to be told of: no
    // notice controls (outside tester pages-rt7 N5).
    const over = () => { visitOver = true; const n = document.getElementById("notify"); if (n) n.hidden = true; };
    if (!data.day_open) over();
    // Still waiting or called when the day closed (未対応): not a visit
    // done (outside tester pages-rt5 F3); cancelled by staff: not either
    // (pages-rt7 N4).
    if (listed(inQueue, "unserved")) { set("mine-state", w.unserved); over(); return; }
    if (listed(inQueue, "cancelled")) { set("mine-state", w.cancelled); over(); return; }
    if (listed(inQueue, "finished")) { set("mine-state", w.finished); over(); return; }
    if (listed(inQueue, "held")) { set("mine-state", w.held); return; }
    if (knowsAll && !passedIn(inQueue)) {
      set("mine-queue", "—");
      set("mine-state", data.day_open ? w.notfound : notOpen);
      return;
    }
    set("mine-state", data.day_open ? w.passed : notOpen);
    // Listed as passed by the office (called, did not come): told even
    // after a call. An office that lists passed numbers says so for every
    // pass, so a number gone from its lists was served or cancelled; from
    // an older one, a number gone without a call seen is taken as passed.
    const listsPassed = data.queues.some((x) => Array.isArray(x.passed));
    if (data.day_open) noticeCheck({ kind: "passed", number, sure: passedIn(inQueue), inferred: !listsPassed });
  }

  // ---- notices: "tell me when my turn is near" (issue 20) --------------
  // In the page (no permission): a chime, vibration, a banner (role=alert,
  // so screen readers announce it), the page title — each notice once per
  // ticket, however often the data repeats or the page reloads (what was
  // told is kept in localStorage under the ticket's date and number). With
  // permission, the relay also pushes them when the page is closed
  // (/push/subscribe; its service worker is /push/sw.js). The rules match
  // the relay's (relay/src/push/notice.rs).
  const nwords = {
    ja: { near: (n, a, wt) => `まもなく順番です。${n} 番：あなたの前にあと ${a} 人です。${wt ? `待ち時間の目安は${wt}です。` : ""}窓口の近くへお戻りください。`, called: (n, c) => `お呼びしています。受付番号 ${n} 番の方、${c} 番窓口へお越しください。`, passed: (n) => `${n} 番はお呼びした番号を過ぎています。職員に声をおかけください。`, base: "番号札の状況", on: "この画面を開いている間、音・振動・表示でお知らせします。", push: "画面を閉じても、このスマートフォンにお知らせします。", denied: "通知が許可されていません。この画面を開いたままにしてください。", failed: "画面を閉じたときのお知らせは設定できませんでした。この画面を開いたままにしてください。", off: "お知らせを止めました。", notag: "画面を閉じたときのお知らせは、番号札の QR コードから開いたときだけ設定できます。この画面を開いたままにしてください。", title: { near: "まもなく順番", called: "お呼びしています", passed: "番号を過ぎました" } },
    easy: { near: (n, a, wt) => `もうすぐ じゅんばんです。${n} ばん：あなたの まえに あと ${a} にん。${wt ? `まつ じかんは ${wt}。` : ""}まどぐちの ちかくに もどって ください。`, called: (n, c) => `よんでいます。${n} ばんの かた、${c} ばんの まどぐちに きて ください。`, passed: (n) => `${n} ばんは もう よばれました。しょくいんに はなして ください。`, base: "ばんごうの ようす", on: "この がめんを ひらいている あいだ、おとと ひょうじで しらせます。", push: "がめんを とじても しらせます。", denied: "つうちが ゆるされて いません。この がめんを ひらいた ままに して ください。", failed: "がめんを とじた ときの しらせは できませんでした。この がめんを ひらいた ままに して ください。", off: "しらせを とめました。", notag: "がめんを とじた ときの しらせは、ばんごうの かみの QR コードから ひらいた ときだけ できます。この がめんを ひらいた ままに して ください。", title: { near: "もうすぐ", called: "よんでいます", passed: "すぎました" } },
    en: { near: (n, a, wt) => `Your turn is near: No. ${n}, ${a} ahead of you.${wt ? ` Expected wait: ${wt}.` : ""} Please come back to the counters.`, called: (n, c) => `You are being called: No. ${n}, please go to counter ${c}.`, passed: (n) => `No. ${n} has passed. Please speak to a member of staff.`, base: "Your ticket", on: "While this page is open you will be alerted by sound, vibration and a banner.", push: "You will be notified on this phone even with the page closed.", denied: "Notifications are blocked: please keep this page open.", failed: "Notifications with the page closed could not be set up: please keep this page open.", off: "Alerts stopped.", notag: "Notifications with the page closed can only be set up from the QR code on your ticket: please keep this page open.", title: { near: "Your turn is near", called: "Called", passed: "Number passed" } },
    zh: { near: (n, a, wt) => `即将轮到您：${n} 号，您前面还有 ${a} 人。${wt ? `预计等候：${wt}。` : ""}请回到窗口附近。`, called: (n, c) => `正在叫您的号码：${n} 号，请到 ${c} 号窗口。`, passed: (n) => `${n} 号已过。请咨询工作人员。`, base: "您的号码", on: "页面打开期间，将以声音、振动和横幅提醒您。", push: "关闭页面后也会在此手机上通知您。", denied: "通知未被允许。请保持此页面打开。", failed: "无法设置关闭页面后的通知。请保持此页面打开。", off: "已停止提醒。", notag: "只有通过号码票上的二维码打开时，才能设置关闭页面后的通知。请保持此页面打开。", title: { near: "即将轮到您", called: "正在叫号", passed: "号码已过" } },
    ko: { near: (n, a, wt) => `곧 차례입니다: ${n}번, 앞에 ${a}명.${wt ? ` 예상 대기: ${wt}.` : ""} 창구 근처로 돌아와 주세요.`, called: (n, c) => `호출 중입니다. ${n}번, ${c}번 창구로 와 주세요.`, passed: (n) => `${n}번이 지났습니다. 직원에게 문의해 주세요.`, base: "당신의 번호표", on: "이 화면이 열려 있는 동안 소리, 진동, 배너로 알려 드립니다.", push: "화면을 닫아도 이 휴대폰으로 알려 드립니다.", denied: "알림이 허용되지 않았습니다. 이 화면을 열어 두세요.", failed: "화면을 닫았을 때의 알림을 설정할 수 없습니다. 이 화면을 열어 두세요.", off: "알림을 중지했습니다.", notag: "화면을 닫았을 때의 알림은 번호표의 QR 코드로 열었을 때만 설정할 수 있습니다. 이 화면을 열어 두세요.", title: { near: "곧 차례", called: "호출 중", passed: "번호 경과" } },
  };
  const baseTitle = document.title;
  let ticketToken = null;
  // The tag of the ticket's QR code: from the URL, or remembered from a
  // visit that had it (a notification opens the page without it).
  let ticketTag = null;
  let prefs = null; // { on, push, kind, ahead, minutes, told: { seen, near, called, passed } }
  let shown = null; // the banner's text while it is up
  let shownKind = null; // and its kind (for the title)
  let stateText = "";
  const storeKey = (t) => `madoguchi-notify:${t}`;
  // The ticket's visit is over or its day closed: the notice controls hide.
  let visitOver = false;
  function loadPrefs(t) {
    let p = null;
    try { p = JSON.parse(localStorage.getItem(storeKey(t)) || "null"); } catch (_) { p = null; }
    return Object.assign({ on: false, push: false, kind: "ahead", ahead: 3, minutes: 10, told: {}, tag: null }, p || {});
  }
  function savePrefs() {
    if (!ticketToken || !prefs) return;
    try { localStorage.setItem(storeKey(ticketToken), JSON.stringify(prefs)); } catch (_) { /* private mode: this visit only */ }
  }
  // Puts the visitor's choice back into the (re-rendered) section.
  function notifyRender(token, tag) {
    if (token !== ticketToken) { ticketToken = token; prefs = token ? loadPrefs(token) : null; shown = null; shownKind = null; }
    setTitle();
    if (prefs && tag && prefs.tag !== tag) { prefs.tag = tag; savePrefs(); }
    ticketTag = prefs ? prefs.tag : null;
    const section = document.getElementById("notify");
    if (!section) return;
    section.hidden = !prefs || visitOver;
    if (!prefs) return;
    const radio = section.querySelector(`input[name="notify-kind"][value="${prefs.kind}"]`);
    if (radio) radio.checked = true;
    const a = document.getElementById("notify-ahead");
    const mi = document.getElementById("notify-minutes");
    if (a) a.value = String(prefs.ahead);
    if (mi) mi.value = String(prefs.minutes);
    section.querySelector('[data-notify="on"]').hidden = prefs.on;
    section.querySelector('[data-notify="off"]').hidden = !prefs.on;
    section.querySelector('[data-notify="push"]').hidden = !(pushPossible && prefs.on && !prefs.push);
    const st = document.getElementById("notify-state");
    if (st) st.textContent = stateText;
    const banner = document.getElementById("notice");
    if (banner) {
      banner.hidden = shown === null;
      const t = document.getElementById("notice-text");
      if (t) t.textContent = shown || "";
    }
  }
  function setState(text) { stateText = text; const st = document.getElementById("notify-state"); if (st) st.textContent = text; }
  // The tab's title in the page's language, with the notice up in front
  // (push-rt6 F6: it stayed Japanese in every language).
  function setTitle() {
    const base = lang === "ja" ? baseTitle : nwords[lang].base;
    document.title = shownKind ? `【${nwords[lang].title[shownKind]}】${base}` : base;
  }
  function fire(kind, text) {
    shown = text;
    shownKind = kind;
    setTitle();
    const banner = document.getElementById("notice");
    const t = document.getElementById("notice-text");
    if (t) t.textContent = text;
    if (banner) banner.hidden = false;
    try { if (navigator.vibrate) navigator.vibrate([300, 100, 300, 100, 300]); } catch (_) { /* no vibration */ }
    chime(() => {});
    // Counted on the body for the tests and a technician's console.
    body.dataset.notices = String(Number(body.dataset.notices || 0) + 1);
    body.dataset.lastNotice = kind;
  }
  function noticeCheck(place) {
    if (!prefs) return;
    const told = prefs.told;
    const was = JSON.stringify(told);
    if (place.kind === "waiting" || place.kind === "called") {
      told.seen = true;
      // Returned to the queue after a pass: a new call is told again.
      if (told.passed) { told.passed = false; told.called = null; }
    }
    if (prefs.on) {
      const w = nwords[lang];
      if (place.kind === "waiting" && !told.near) {
        const crossed = prefs.kind === "minutes" ? place.minutes <= prefs.minutes : place.ahead <= prefs.ahead;
        // The wait in the page's own words (its line below says the
        // same), none when there is no estimate (push-rt6 F2, F6).
        if (crossed) { told.near = true; fire("near", w.near(place.number, place.ahead, place.wait)); }
      } else if (place.kind === "called" && told.called !== place.counter) {
        told.near = true;
        told.called = place.counter;
        fire("called", w.called(place.number, place.counter));
      } else if (place.kind === "passed" && !told.passed && (place.sure || (place.inferred && told.seen && !told.called))) {
        told.passed = true;
        fire("passed", w.passed(place.number));
      }
    }
    if (JSON.stringify(told) !== was) savePrefs();
  }

  // Web Push is offered only where the relay serves its key.
  let pushPossible = false;
  let pushKey = null;
  if ("serviceWorker" in navigator && "PushManager" in window && document.getElementById("ticket-data")) {
    fetch("/push/key", { cache: "no-cache" })
      .then((r) => (r.ok ? r.json() : null))
      .then((k) => { if (k && k.key) { pushKey = k.key; pushPossible = true; notifyRender(ticketToken); } })
      .catch(() => {});
  }
  function keyBytes(b64) {
    const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }
  // POSTs with an Origin: the page's no-referrer policy would send
  // "Origin: null", which the relay refuses.
  function pushPost(path, payload) {
    return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload), credentials: "omit", referrerPolicy: "strict-origin" });
  }
  // The worker controls no page (its scope is /push/), so
  // navigator.serviceWorker.ready never settles here: wait for it directly.
  function activated(reg) {
    return new Promise((resolve) => {
      const w = reg.installing || reg.waiting;
      if (!w) { resolve(reg); return; }
      w.addEventListener("statechange", () => { if (w.state === "activated") resolve(reg); });
    });
  }
  // What the relay is sent for the ticket: date/number/tag.
  const claim = () => `${ticketToken}/${ticketTag}`;
  async function pushSubscribe() {
    const w = nwords[lang];
    // No tag, no subscription: said before any permission is asked.
    if (!ticketTag) { setState(w.notag); notifyRender(ticketToken); return; }
    try {
      const permission = await Notification.requestPermission();
      if (permission !== "granted") { setState(w.denied); return; }
      const reg = await activated(await navigator.serviceWorker.register("/push/sw.js", { scope: "/push/" }));
      let sub = await reg.pushManager.getSubscription();
      if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(pushKey) });
      const res = await pushPost("/push/subscribe", { ticket: claim(), subscription: sub.toJSON(), notify: notifyChoice(), lang });
      // 404: a wrong tag, or a ticket no longer waiting (the relay tells
      // them apart from nobody).
      if (res.ok) { prefs.push = true; savePrefs(); setState(w.push); body.dataset.pushSubscribed = "1"; body.dataset.pushLang = lang; } else { setState(res.status === 404 ? w.notag : w.failed); }
    } catch (_) { setState(w.failed); }
    notifyRender(ticketToken);
  }
  function notifyChoice() {
    return prefs.kind === "minutes" ? { minutes: prefs.minutes } : { ahead: prefs.ahead };
  }
  // Another language chosen on the page: the relay's pushes follow it. The
  // subscription is sent again with the new language (the relay keeps what
  // it has told); no permission is asked again.
  async function pushLanguage() {
    if (!prefs || !prefs.push || !pushPossible || !ticketToken || !ticketTag) return;
    try {
      const reg = await navigator.serviceWorker.getRegistration("/push/");
      const sub = reg && (await reg.pushManager.getSubscription());
      if (!sub) return;
      const res = await pushPost("/push/subscribe", { ticket: claim(), subscription: sub.toJSON(), notify: notifyChoice(), lang });
      if (res.ok) body.dataset.pushLang = lang;
    } catch (_) { /* the pushes stay in the language chosen before */ }
  }
  async function pushUnsubscribe() {
    try {
      const reg = await navigator.serviceWorker.getRegistration("/push/");
      const sub = reg && (await reg.pushManager.getSubscription());
      if (sub) await pushPost("/push/unsubscribe", { ticket: ticketToken, endpoint: sub.endpoint });
    } catch (_) { /* the relay ends it with the ticket anyway */ }
  }
  function readChoice() {
    if (!prefs) return;
    const kind = document.querySelector('input[name="notify-kind"]:checked');
    const a = document.getElementById("notify-ahead");
    const mi = document.getElementById("notify-minutes");
    prefs.kind = kind ? kind.value : "ahead";
    prefs.ahead = a ? Number(a.value) : 3;
    prefs.minutes = mi ? Number(mi.value) : 10;
  }
  document.addEventListener("change", (ev) => {
    if (!prefs || !ev.target.closest("#notify")) return;
    readChoice();
    // A new threshold may be crossed already: told afresh.
    prefs.told.near = false;
    savePrefs();
    if (prefs.push) pushSubscribe();
    ticketView(lastData);
  });
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-notify]");
    if (!b || !prefs) return;
    const what = b.dataset.notify;
    if (what === "on") {
      readChoice();
      prefs.on = true;
      // A tap lets the page play sound later (autoplay rules).
      try { audio = audio || new (window.AudioContext || window.webkitAudioContext)(); audio.resume(); } catch (_) { /* no audio */ }
      savePrefs();
      setState(nwords[lang].on);
      ticketView(lastData);
    } else if (what === "push") {
      pushSubscribe();
    } else if (what === "off") {
      if (prefs.push) pushUnsubscribe();
      prefs.on = false;
      prefs.push = false;
      savePrefs();
      setState(nwords[lang].off);
      notifyRender(ticketToken);
    } else if (what === "dismiss") {
      shown = null;
      shownKind = null;
      notifyRender(ticketToken);
    }
  });

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-set-lang]");
    if (!b) return;
    const was = lang;
    lang = b.dataset.setLang;
    ticketView(lastData);
    if (lang !== was) pushLanguage();
  });
  window.addEventListener("hashchange", () => ticketView(lastData));
  let lastData = null;
  const initial = document.getElementById("ticket-data");
  if (initial) { try { lastData = JSON.parse(initial.textContent); } catch (_) { lastData = null; } }

  // ---- data ------------------------------------------------------------
  function apply(msg) {
    if (typeof msg.html === "string") {
      surface.innerHTML = msg.html;
      startBoard();
      announceNew();
    }
    if (msg.data) { lastData = msg.data; ticketView(lastData); }
    fresh();
  }

  // The office's epoch (issue 24): a server older than the highest this
  // display has seen was replaced by its standby; its numbers are not the
  // office's, so the display shows why instead of them.
  function replacedServer(epoch) {
    if (!Number.isInteger(epoch)) return false;
    let known = 0;
    try { known = parseInt(localStorage.getItem("madoguchi-epoch") || "0", 10) || 0; } catch (_) { known = 0; }
    if (epoch >= known) {
      if (epoch > known) { try { localStorage.setItem("madoguchi-epoch", String(epoch)); } catch (_) { /* this page only */ } }
      return false;
    }
    const ps = staleBanner.querySelectorAll("p");
    if (ps.length >= 3) {
      ps[0].textContent = "この機械は主機ではなくなりました";
      ps[1].textContent = "呼び出し番号は職員にお尋ねください";
      ps[2].textContent = "This server is no longer the primary. Please ask a member of staff.";
    }
    body.classList.add("stale");
    staleBanner.hidden = false;
    lastFresh = 0;
    return true;
  }

  async function poll() {
    if (socket && socket.readyState === WebSocket.OPEN) return;
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const res = await fetch(`/displays/${topic}.json`, { headers, credentials: "same-origin", cache: "no-cache" });
      if (res.status === 401 || res.status === 403) { refused(); return; }
      if (res.headers.get("X-Madoguchi-Stale")) return;
      if (res.status === 304) { fresh(); return; }
      if (res.ok) {
        etag = res.headers.get("ETag");
        apply(await res.json());
      }
    } catch (_) { /* still down: the stale check will show it */ }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${proto}//${location.host}/ws?topic=${encodeURIComponent(topic)}`);
    socket.onopen = () => { backoff = 1000; };
    socket.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg.heartbeat) { if (!replacedServer(msg.epoch)) fresh(); return; }
      // The internet relay's data has expired (the office stopped sending).
      if (msg.stale) { lastFresh = 0; return; }
      apply(msg);
    };
    socket.onclose = (ev) => {
      socket = null;
      if (ev.code === 1008) refused();
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }

  // ---- the staff board's rotating pages -------------------------------
  // One timer for the page's life: a data update redraws the pages and
  // shows the page the rotation is on; it never restarts the rotation (the
  // board used to stay on page 1 while the office was busy).
  let boardPage = 0;
  let rotation = null;
  let rotationMs = 0;
  function showBoardPage() {
    const board = surface.querySelector(".board");
    if (!board) return;
    const pages = Array.from(board.querySelectorAll(".board-page"));
    if (pages.length === 0) return;
    boardPage %= pages.length;
    pages.forEach((p, i) => { p.hidden = i !== boardPage; });
    board.dataset.page = String(boardPage + 1);
  }
  function startBoard() {
    const board = surface.querySelector(".board");
    if (!board) return;
    const ms = Number(board.dataset.seconds || 10) * 1000;
    if (rotation === null || ms !== rotationMs) {
      clearInterval(rotation);
      rotationMs = ms;
      rotation = setInterval(() => { boardPage += 1; showBoardPage(); }, ms);
    }
    showBoardPage();
  }

  // A page the display leaves (its next page, a reload) closes its socket
  // itself: kept open in the browser's back-forward cache it held one of
  // the display's few sockets and, closed later, was recorded as the
  // display losing its connection (issue 18). Shown again, it reconnects.
  window.addEventListener("pagehide", () => {
    if (!socket) return;
    const s = socket;
    socket = null;
    s.onclose = null;
    s.close(1000, "page left");
  });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted && !socket) connect(); });

  startBoard();
  announceNew();
  ticketView(lastData);
  connect();
  setInterval(poll, 5000);
})();
