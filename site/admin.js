// 管理: promote a standby; staff accounts, devices and sessions (issue 18).
// Every button calls the JSON API (the same checks and audit records as
// any API client); the page then shows the server's answer in words.
"use strict";
(function () {
  const M = window.Madoguchi;
  const out = document.getElementById("result");
  const KEY = "madoguchi-admin-result";

  function say(text, bad) {
    if (!out) return;
    out.textContent = text;
    out.classList.toggle("bad", Boolean(bad));
  }

  // A change that alters the tables: reload, and say what happened there
  // (the page is drawn by the server, never patched up here).
  function reloadSaying(text) {
    try { sessionStorage.setItem(KEY, text); } catch (_) { /* private mode */ }
    location.reload();
  }
  try {
    const left = sessionStorage.getItem(KEY);
    if (left) { sessionStorage.removeItem(KEY); say(left); }
  } catch (_) { /* private mode */ }

  async function send(method, path, body) {
    if (method === "POST") return M.post(path, body);
    const res = await fetch(path, {
      method,
      headers: { "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
      credentials: "same-origin",
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, body: data };
  }

  async function act(method, path, body, done) {
    try {
      const r = await send(method, path, body);
      if (r.ok) return done(r.body);
      say(M.message(r.body), true);
    } catch (_) {
      say("サーバーに接続できません。もう一度押してください。", true);
    }
  }

  const promote = document.getElementById("promote");
  if (promote) {
    promote.addEventListener("click", async () => {
      if (!confirm("この予備機を主機に昇格しますか？ 主機が止まっていることを確かめてください。")) return;
      const r = await M.post("/api/promote", {});
      // The server says whether this machine takes commands now (it may
      // not yet: another standby of the old primary still enrolled here).
      const done = r.ok && r.body && typeof r.body.message_ja === "string" ? r.body.message_ja : "主機に昇格しました。";
      say(r.ok ? done : M.message(r.body), !r.ok || (r.body && r.body.accepting === false));
      if (r.ok) promote.disabled = true;
    });
  }

  // A revoked standby not known to be off holds commands (issue 24,
  // outside tester N1): the admin says it is switched off.
  const confirmOff = document.getElementById("confirm-standby-off");
  if (confirmOff) {
    confirmOff.addEventListener("click", () => {
      if (!confirm("取り消した予備機の電源が切れていることを確かめましたか？ その予備機が主機に昇格していると、同じ番号が二度出ます。")) return;
      act("POST", "/api/standby/confirm-off", {},
        () => reloadSaying("取り消した予備機の停止を確認しました。受付を再開します。"));
    });
  }

  // Restored from a backup, or a device has seen a newer primary this one
  // cannot verify (issue 24, outside tester replay4 N1): each confirmed
  // on its own.
  // The highest number of each queue seen given, entered by the admin
  // (devices' reports are hints beside the boxes, never filled in:
  // outside tester insider-rt9 F7): issuing resumes above it (outside
  // tester failover-rt5 F4). Empty boxes are left out; with none filled
  // the server asks for them.
  function highestSeen() {
    const boxes = Array.from(document.querySelectorAll("input[data-highest]"));
    const filled = boxes.filter((b) => b.value.trim() !== "" && Number.isInteger(Number(b.value)));
    if (filled.length === 0) return null;
    const out = {};
    filled.forEach((b) => { out[b.dataset.highest] = Number(b.value); });
    return out;
  }
  function confirmHold(hold, fallback) {
    const body = { hold };
    const h = highestSeen();
    if (h) body.highest = h;
    act("POST", "/api/standby/confirm-off", body,
      (r) => reloadSaying(r && typeof r.message_ja === "string" ? r.message_ja : fallback));
  }
  const confirmRestored = document.getElementById("confirm-restored");
  if (confirmRestored) {
    confirmRestored.addEventListener("click", () => {
      if (!confirm("元の主機の予備機（ほかの機械）の電源がすべて切れていることを確かめましたか？ どれかが主機に昇格していると、同じ番号が二度出ます。")) return;
      confirmHold("restored", "予備機が動いていないことを確認しました。受付を再開します。");
    });
  }
  const confirmClaims = document.getElementById("confirm-claims");
  if (confirmClaims) {
    confirmClaims.addEventListener("click", () => {
      if (!confirm("ほかに主機として動いている機械がないことを確かめましたか？ あると、同じ番号が二度出ます。")) return;
      confirmHold("epoch_claim", "ほかの主機がないことを確認しました。受付を再開します。");
    });
  }

  // A behind hold set wrongly (outside tester insider-rt9 F10): cleared
  // by an admin, audited, issuing resumes above the numbers entered.
  const confirmBehind = document.getElementById("confirm-behind");
  if (confirmBehind) {
    confirmBehind.addEventListener("click", () => {
      if (!confirm("この主機より記録の多い予備機がないことを確かめましたか？ あるときは、その予備機を昇格してください。")) return;
      confirmHold("behind", "予備機の方が記録が多くないことを確認しました。受付を再開します。");
    });
  }

  const reopen = document.getElementById("reopen-day");
  if (reopen) {
    reopen.addEventListener("click", () => {
      if (!confirm("本日の受付を再開しますか？ 番号は続きから発行されます。")) return;
      act("POST", "/api/commands", { command: "reopen_day" },
        () => reloadSaying("本日の受付を再開しました。番号は続きから発行されます。"));
    });
  }

  const newUser = document.getElementById("new-user");
  if (newUser) {
    newUser.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = new FormData(newUser);
      const username = String(f.get("username")).trim();
      act("POST", "/api/users", { username, role: f.get("role"), password: f.get("password") },
        () => reloadSaying(`アカウント ${username} を作りました。`));
    });
  }

  document.querySelectorAll("form.set-user").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const username = form.dataset.user;
      // Said as the audit log says it: only what changed (outside tester
      // pages-rt11 R5: 「役割とパスワードを設定しました」 for a password alone).
      const select = form.querySelector("select[name=role]");
      const was = Array.from(select.options).find((o) => o.defaultSelected);
      const now = select.options[select.selectedIndex];
      const said = was && now && was.value !== now.value
        ? `${username} のパスワードを設定し直し、役割を${was.textContent}から${now.textContent}に変えました。`
        : `${username} のパスワードを設定し直しました。`;
      act("POST", "/api/users", { username, role: f.get("role"), password: f.get("password"), replace: true },
        () => reloadSaying(said));
    });
  });

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    const d = b.dataset;
    if (d.disableUser !== undefined) {
      if (!confirm(`${d.disableUser} を無効にしますか？ すぐにログアウトされます。`)) return;
      act("POST", `/api/users/${encodeURIComponent(d.disableUser)}/disabled`, { disabled: true },
        () => reloadSaying(`${d.disableUser} を無効にしました。`));
    } else if (d.enableUser !== undefined) {
      act("POST", `/api/users/${encodeURIComponent(d.enableUser)}/disabled`, { disabled: false },
        () => reloadSaying(`${d.enableUser} を有効にしました。`));
    } else if (d.revokeDevice !== undefined) {
      if (!confirm(`端末 ${d.revokeDevice} の登録を取り消しますか？ その端末はすぐに使えなくなります。`)) return;
      act("POST", `/api/devices/${encodeURIComponent(d.revokeDevice)}/disabled`, { disabled: true },
        // A standby out of touch does not know yet: the server says what to do.
        (body) => reloadSaying(`端末 ${d.revokeDevice} の登録を取り消しました。${body && typeof body.notice_ja === "string" ? body.notice_ja : ""}`));
    } else if (d.releaseDevice !== undefined) {
      if (!confirm(`発券機 ${d.releaseDevice} の発券を再開しますか？ 停止の理由（短時間の大量発券）を確かめてから再開してください。`)) return;
      act("POST", `/api/devices/${encodeURIComponent(d.releaseDevice)}/release`, {},
        () => reloadSaying(`発券機 ${d.releaseDevice} の発券を再開しました。`));
    } else if (d.revokeLink !== undefined) {
      // An unused enrolment link (outside tester pages-rt9 F2).
      if (!confirm(`端末 ${d.linkName} の登録用リンクを取り消しますか？ そのリンクでは登録できなくなります。`)) return;
      act("DELETE", `/api/enrolments/${encodeURIComponent(d.revokeLink)}`, null,
        () => reloadSaying(`端末 ${d.linkName} の登録用リンクを取り消しました。`));
    } else if (d.endSession !== undefined) {
      // Which of the person's sessions ended (pages-rt10 N1).
      const row = b.closest("tr");
      const who = row.dataset.user;
      const where = row.dataset.where ? `（${row.dataset.where}）` : "";
      // Asked first, as every other removal on these pages is: one key on
      // the wrong row signed out someone at a counter (pages-rt12 F4).
      if (!confirm(`${who} のログイン${where}を終了しますか？ その人はすぐにログアウトされます。`)) return;
      act("DELETE", `/api/sessions/${encodeURIComponent(d.endSession)}`, null,
        () => reloadSaying(`${who} のログインを終了しました${where}。`));
    }
  });

  // The list of unused links, drawn again after a new one is made (the
  // link and its QR code stay on the page; pages-rt9 F2). Text only.
  async function showLinks() {
    const table = document.getElementById("links");
    if (!table) return;
    let rows;
    try {
      const r = await send("GET", "/api/enrolments");
      if (!r.ok || !r.body || !Array.isArray(r.body.enrolments)) return;
      rows = r.body.enrolments;
    } catch (_) { return; }
    const body = table.tBodies[0];
    body.textContent = "";
    rows.forEach((l) => {
      const tr = document.createElement("tr");
      tr.dataset.link = l.id;
      tr.dataset.name = l.name;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = l.name;
      tr.appendChild(th);
      [l.role_ja, `${l.expires} まで`, l.made_by].forEach((t) => {
        const td = document.createElement("td");
        td.textContent = t;
        tr.appendChild(td);
      });
      const td = document.createElement("td");
      if (l.replaces) {
        const w = document.createElement("span");
        w.className = "warn-text";
        w.textContent = `⚠ 登録済みの「${l.name}」と置き換わります `;
        td.appendChild(w);
      }
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.revokeLink = l.id;
      b.dataset.linkName = l.name;
      b.textContent = "取り消す";
      td.appendChild(b);
      tr.appendChild(td);
      body.appendChild(tr);
    });
    const none = document.getElementById("no-links");
    if (none) none.hidden = rows.length > 0;
  }

  const newDevice = document.getElementById("new-device");
  if (newDevice) {
    newDevice.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = new FormData(newDevice);
      const name = String(f.get("name")).trim();
      act("POST", "/api/devices", { name, role: f.get("role") }, (body) => {
        const link = document.getElementById("enrolment-url");
        link.href = body.enrol_url;
        link.textContent = body.enrol_url;
        document.getElementById("enrolment-name").textContent = name;
        // Our own server's SVG (qrcode crate), not the visitor's text.
        document.getElementById("enrolment-qr").innerHTML = body.qr_svg;
        document.getElementById("enrolment").hidden = false;
        // A newer standby link withdraws an unused one: said, not silent.
        const withdrawn = typeof body.notice_ja === "string" ? body.notice_ja : "";
        say(`${name} の登録用リンクを作りました（${body.valid_hours} 時間有効・一度だけ）。${withdrawn}`);
        showLinks();
      });
    });
  }
})();
