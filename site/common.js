// Shared by every page: the CSRF token, JSON requests, fragment swaps.
"use strict";

window.Madoguchi = (function () {
  function csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }

  // POSTs JSON; resolves to {ok, status, body}. Network failures reject.
  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { ok: res.ok, status: res.status, body: data };
  }

  // Replaces an element's content with its server-rendered fragment.
  async function swap(el) {
    const res = await fetch(el.dataset.fragment, { credentials: "same-origin" });
    if (res.status === 401 || res.status === 403) { location.reload(); return false; }
    if (!res.ok) throw new Error("fragment " + res.status);
    el.innerHTML = await res.text();
    return true;
  }

  // Reads a yes/no state attribute (data-open, data-day-open…) the one
  // way every page does: the templates write "true"/"false", and an older
  // fragment's "True"/"False" (Jinja's bool) reads the same.
  function flag(el, name) {
    const v = el && el.dataset ? el.dataset[name] : undefined;
    return typeof v === "string" && ["true", "1", "yes"].includes(v.trim().toLowerCase());
  }

  function message(body) {
    if (body && body.error) return body.error.message_ja + "（" + body.error.message_en + "）";
    return "エラーが起きました";
  }

  return { csrf, post, swap, message, flag };
})();
