// 管理: promote a standby to primary.
"use strict";
(function () {
  const b = document.getElementById("promote");
  if (!b) return;
  b.addEventListener("click", async () => {
    if (!confirm("この予備機を主機に昇格しますか？ 主機が止まっていることを確かめてください。")) return;
    const r = await window.Madoguchi.post("/api/promote", {});
    const out = document.getElementById("result");
    out.textContent = r.ok ? "主機に昇格しました。ここで受付を続けられます。" : window.Madoguchi.message(r.body);
    if (r.ok) b.disabled = true;
  });
})();
