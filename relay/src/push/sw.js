// The relay's service worker for the mobile ticket page (issue 20): shows
// the notice a push carries (the relay encrypted it for this browser; the
// browser has decrypted it) and, when it is tapped, opens the ticket page.
// Served by the relay at /push/sw.js; the page registers it with scope
// /push/ (it controls no page, it only receives pushes).
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener("push", (ev) => {
  let msg = {};
  try { msg = ev.data ? ev.data.json() : {}; } catch (_) { msg = { body: ev.data ? ev.data.text() : "" }; }
  const title = msg.title || "窓口のお知らせ";
  const options = {
    body: msg.body || "",
    tag: msg.tag || "madoguchi",
    renotify: true,
    requireInteraction: msg.kind === "called",
    vibrate: [300, 100, 300, 100, 300],
    // The subscription's language (the relay sends it with each push).
    lang: typeof msg.lang === "string" && /^[a-z]{2}$/.test(msg.lang) ? msg.lang : "ja",
    data: { url: msg.url || "/m" },
  };
  // An open ticket page hears of it too (it alerts in the page anyway).
  ev.waitUntil(Promise.all([
    self.registration.showNotification(title, options),
    self.clients.matchAll({ type: "window", includeUncontrolled: true })
      .then((cs) => cs.forEach((c) => c.postMessage({ push: msg }))),
  ]));
});

self.addEventListener("notificationclick", (ev) => {
  ev.notification.close();
  const url = (ev.notification.data && ev.notification.data.url) || "/m";
  // Only a path on this origin: a message can never send the visitor away.
  const target = new URL(url.startsWith("/") ? url : "/m", self.location.origin).href;
  ev.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of wins) {
      if (w.url.split("#")[0] === target.split("#")[0] && "focus" in w) {
        if ("navigate" in w) { try { await w.navigate(target); } catch (_) { /* not ours */ } }
        return w.focus();
      }
    }
    return self.clients.openWindow(target);
  })());
});
