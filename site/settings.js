// 設定: the settings form, and the TOML editor for everything else.
"use strict";
(function () {
  const M = window.Madoguchi;
  const area = document.getElementById("config");
  const result = document.getElementById("result");
  const form = document.getElementById("settings-form");

  function show(r, okText) {
    result.scrollIntoView({ block: "nearest" });
    if (r.ok) { result.textContent = okText; result.classList.remove("bad"); return; }
    result.textContent = M.message(r.body);
    result.classList.add("bad");
    const line = r.body && r.body.error && r.body.error.line;
    if (line && area.closest("details").open) {
      // Put the cursor on the line the error names.
      const lines = area.value.split("\n");
      const start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
      area.focus();
      area.setSelectionRange(start, start + (lines[line - 1] || "").length);
      const lh = parseFloat(getComputedStyle(area).lineHeight) || 1.4 * parseFloat(getComputedStyle(area).fontSize);
      area.scrollTop = Math.max(0, (line - 4) * lh);
    }
  }

  function collect() {
    const num = (el) => (el && el.value !== "" ? Number(el.value) : null);
    const queues = Array.from(form.querySelectorAll("tr[data-queue]")).map((tr) => ({
      id: tr.dataset.queue,
      name_ja: tr.querySelector("[name=name_ja]").value,
      name_en: tr.querySelector("[name=name_en]").value,
      from: num(tr.querySelector("[name=from]")),
      to: num(tr.querySelector("[name=to]")),
      colour: tr.querySelector("[name=colour]").value,
      minutes: num(tr.querySelector("[name=minutes]")),
    }));
    const counters = Array.from(form.querySelectorAll("tr[data-counter]")).map((tr) => {
      // Keep the priority order the counter had; newly ticked queues go last.
      const before = tr.dataset.serves ? tr.dataset.serves.split(",") : [];
      const ticked = Array.from(tr.querySelectorAll("[name=serves]:checked")).map((i) => i.value);
      const serves = before.filter((q) => ticked.includes(q)).concat(ticked.filter((q) => !before.includes(q)));
      return {
        number: Number(tr.dataset.counter),
        section: tr.querySelector("[name=section]").value,
        serves,
        policy: tr.querySelector("[name=policy]").value,
      };
    });
    const extra_days = Array.from(form.querySelectorAll("tr.extra-day")).map((tr) => ({
      date: tr.querySelector("[name=date]").value,
      hours: tr.querySelector("[name=hours]").value,
      name: tr.querySelector("[name=name]").value,
    }));
    return {
      queues,
      counters,
      message_ja: form.querySelector("[name=message_ja]").value,
      message_en: form.querySelector("[name=message_en]").value,
      seconds_per_page: num(form.querySelector("[name=seconds_per_page]")),
      extra_days,
    };
  }

  // The configuration each part of the page shows (the form, the TOML
  // text): a save from a stale one (another tab, or the other part, saved
  // since) is refused by the server instead of undoing that change.
  function basedOn(el) { return el.dataset.basedOn || undefined; }
  function saved(el, r) { if (r.ok && r.body && r.body.based_on) el.dataset.basedOn = r.body.based_on; }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    const r = await M.post("/api/settings/form", Object.assign(collect(), { based_on: basedOn(form) }));
    saved(form, r);
    show(r, r.ok ? `保存して適用しました（記録 ${r.body.seq}）` : "");
  });

  document.getElementById("add-day").addEventListener("click", () => {
    const row = document.getElementById("extra-day-row").content.firstElementChild.cloneNode(true);
    document.querySelector("#extra-days tbody").appendChild(row);
    row.querySelector("input").focus();
  });
  document.getElementById("extra-days").addEventListener("click", (ev) => {
    const b = ev.target.closest(".remove-day");
    if (b) b.closest("tr").remove();
  });

  document.getElementById("validate").addEventListener("click", async () => {
    show(await M.post("/api/settings/validate", { toml: area.value }), "問題ありません（No problems）");
  });
  document.getElementById("apply").addEventListener("click", async () => {
    if (!confirm("この設定を適用しますか？")) return;
    const r = await M.post("/api/settings", { toml: area.value, based_on: basedOn(area) });
    saved(area, r);
    show(r, r.ok ? `適用しました（記録 ${r.body.seq}）` : "");
  });
})();
