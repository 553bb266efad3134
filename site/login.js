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
      // No page asked for: the role's own first page (/admin, /audit, the
      // station). A staff member with no counter open goes to the counter
      // last used in this browser, or /staff asks which — never silently
      // counter 1 (issue 18, R11).
      const me = await r.json().catch(() => null);
      let home = (me && me.home) || "/";
      if (home === "/staff") {
        let n = "";
        try { n = localStorage.getItem("madoguchi-counter") || ""; } catch (_) { /* /staff asks */ }
        if (/^\d{1,5}$/.test(n)) home = "/staff?counter=" + n;
      }
      location.href = form.dataset.next || home;
      return;
    }
    const body = await r.json().catch(() => null);
    err.textContent = body && body.error ? body.error.message_ja : "ログインできませんでした";
  } catch (_) {
    err.textContent = "サーバーに接続できません";
  }
});
