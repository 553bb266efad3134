// 統計: make a report and download it, showing that the work is under way.
"use strict";
(function () {
  const M = window.Madoguchi;
  const form = document.getElementById("report-form");
  const progress = document.getElementById("progress");
  const result = document.getElementById("result");
  const button = document.getElementById("make");

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    const fmt = form.format.value;
    const body = {
      from: form.from.value,
      to: form.to.value,
      by: form.by.value,
      format: fmt === "xlsx" ? "xlsx" : "csv",
      encoding: fmt === "csv-sjis" ? "sjis" : "utf8",
    };
    button.disabled = true;
    progress.hidden = false;
    result.textContent = "";
    const started = performance.now();
    try {
      const res = await fetch("/api/statistics/report", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": M.csrf() },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (!res.ok) {
        const err = await res.json().catch(() => null);
        result.textContent = M.message(err);
        result.classList.add("bad");
        return;
      }
      // A period without records: said, and no empty file downloaded
      // (outside tester pages-rt9 F3).
      const none = res.headers.get("X-Madoguchi-No-Records");
      if (none) {
        result.textContent = none === "future"
          ? `この期間（${body.from} 〜 ${body.to}）はまだ来ていないため、記録がありません。ファイルは作りませんでした。今日までの期間を選んでください。`
          : `この期間（${body.from} 〜 ${body.to}）には受付の記録がありません。ファイルは作りませんでした。別の期間を選んでください。`;
        result.classList.add("bad");
        return;
      }
      const blob = await res.blob();
      const name = (res.headers.get("Content-Disposition") || "").split('filename="')[1]?.replace('"', "") || "madoguchi-stats";
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      result.classList.remove("bad");
      // A period running past today: the days after it have no records
      // yet, said beside the file (pages12 brief 2, pages-rt10 N6).
      const after = res.headers.get("X-Madoguchi-Future-From");
      const later = after
        ? ` ${after} 〜 ${body.to} はまだ来ていない日のため、記録はありません（ファイルには今日までの分が入っています）。`
        : "";
      result.textContent = `${name} を作成しました（${Math.round(blob.size / 1024)} KB、${secs} 秒）。${later}`;
    } catch (_) {
      result.textContent = "サーバーに接続できません";
      result.classList.add("bad");
    } finally {
      button.disabled = false;
      progress.hidden = true;
    }
  });
})();
