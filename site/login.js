"use strict";
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const err = document.getElementById("login-error");
  err.textContent = "";
  try {
    const r = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
      credentials: "same-origin",
    });
    if (r.ok) {
      // No page asked for: the role's own first page (/admin, /audit, the station).
      const me = await r.json().catch(() => null);
      location.href = form.dataset.next || (me && me.home) || "/";
      return;
    }
    const body = await r.json().catch(() => null);
    err.textContent = body && body.error ? body.error.message_ja : "ログインできませんでした";
  } catch (_) {
    err.textContent = "サーバーに接続できません";
  }
});
