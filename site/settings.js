// 設定: validate and apply the office configuration.
"use strict";
(function () {
  const M = window.Madoguchi;
  const area = document.getElementById("config");
  const result = document.getElementById("result");

  function show(r, okText) {
    if (r.ok) { result.textContent = okText; result.classList.remove("bad"); return; }
    result.textContent = M.message(r.body);
    result.classList.add("bad");
    const line = r.body && r.body.error && r.body.error.line;
    if (line) {
      // Put the cursor on the line the error names.
      const lines = area.value.split("\n");
      const start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
      area.focus();
      area.setSelectionRange(start, start + (lines[line - 1] || "").length);
      const lh = parseFloat(getComputedStyle(area).lineHeight) || 1.4 * parseFloat(getComputedStyle(area).fontSize);
      area.scrollTop = Math.max(0, (line - 4) * lh);
    }
  }

  document.getElementById("validate").addEventListener("click", async () => {
    show(await M.post("/api/settings/validate", { toml: area.value }), "問題ありません（No problems）");
  });
  document.getElementById("apply").addEventListener("click", async () => {
    if (!confirm("この設定を適用しますか？")) return;
    const r = await M.post("/api/settings", { toml: area.value });
    show(r, r.ok ? `適用しました（記録 ${r.body.seq}）` : "");
  });
})();
