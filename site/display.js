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

  function fresh() {
    lastFresh = Date.now();
    if (body.classList.contains("stale")) {
      body.classList.remove("stale");
      staleBanner.hidden = true;
    }
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
    const [number, counter] = queue.shift();
    live.textContent = `受付番号 ${number} 番の方、${counter} 番窓口へお越しください`;
    chime(() => say(`受付番号 ${number} 番の方、${counter} 番窓口へお越しください`, "ja-JP", () =>
      say(`Number ${number}, please go to counter ${counter}.`, "en-US", () => { speaking = false; next(); })));
  }

  function announceNew() {
    const ids = Array.from(surface.querySelectorAll("[data-call]")).map((e) => e.dataset.call);
    if (known !== null) {
      ids.filter((id) => !known.has(id)).reverse().forEach((id) => {
        const [number, counter] = id.split(":");
        queue.push([number, counter]);
      });
      next();
    }
    known = new Set(ids);
  }

  // ---- data ------------------------------------------------------------
  function apply(msg) {
    if (typeof msg.html === "string") {
      surface.innerHTML = msg.html;
      startBoard();
      announceNew();
    }
    fresh();
  }

  async function poll() {
    if (socket && socket.readyState === WebSocket.OPEN) return;
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const res = await fetch(`/displays/${topic}.json`, { headers, credentials: "same-origin", cache: "no-cache" });
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
      if (msg.heartbeat) { fresh(); return; }
      apply(msg);
    };
    socket.onclose = () => {
      socket = null;
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }

  // ---- the staff board's rotating pages -------------------------------
  let rotation = null;
  function startBoard() {
    const board = surface.querySelector(".board");
    clearInterval(rotation);
    if (!board) return;
    const pages = Array.from(board.querySelectorAll(".board-page"));
    if (pages.length < 2) return;
    let i = 0;
    rotation = setInterval(() => {
      pages[i].hidden = true;
      i = (i + 1) % pages.length;
      pages[i].hidden = false;
    }, Number(board.dataset.seconds || 10) * 1000);
  }

  startBoard();
  announceNew();
  connect();
  setInterval(poll, 5000);
})();
