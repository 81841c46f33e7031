// The review page: saves each change at once; keyboard navigation. No build step.
"use strict";
(function () {
  const token = document.querySelector('meta[name="x-token"]').content;
  const status = document.getElementById("status");
  function show(text, error) {
    if (!status) return;
    status.textContent = text;
    status.className = "status" + (error ? " error" : "");
  }
  async function post(url, body) {
    const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-Token": token},
                                       body: JSON.stringify(body), credentials: "same-origin"});
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }
  const exportButton = document.getElementById("export");
  if (exportButton) {
    exportButton.addEventListener("click", async () => {
      try { await post("/api/export", {}); show("ведомость, отзывы и results.json обновлены"); }
      catch (e) { show("ошибка: " + e.message, true); }
    });
  }
  const root = document.getElementById("grading");
  if (!root) return;
  const q = root.dataset.question, n = root.dataset.n;
  const saveUrl = "/api/q/" + encodeURIComponent(q) + "/" + n;
  const boxes = Array.from(document.querySelectorAll("input.item"));
  const comment = document.getElementById("comment");
  const score = document.getElementById("score");
  let pending = Promise.resolve();
  function save(body) {
    show("сохранение…");
    pending = pending.then(() => post(saveUrl, body)).then((data) => {
      score.textContent = data.score === null ? "—" : String(data.score);
      document.getElementById("graded").textContent = String(data.graded);
      document.getElementById("progress").value = data.graded;
      show("сохранено");
    }).catch((e) => show("не сохранено: " + e.message, true));
    return pending;
  }
  boxes.forEach((box) => box.addEventListener("change", () => {
    save({items: boxes.filter((b) => b.checked).map((b) => b.value)});
  }));
  let timer = null;
  comment.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => save({comment: comment.value}), 400);
  });
  function flush() {
    if (timer !== null) { clearTimeout(timer); timer = null; return save({comment: comment.value}); }
    return pending;
  }
  comment.addEventListener("blur", flush);
  async function go(url) { if (url) { await flush(); window.location.href = url; } }
  const form = document.getElementById("item-form");
  function editItem(li) {
    form.hidden = false;
    form.elements.id.value = li ? li.dataset.id : "";
    form.elements.text.value = li ? li.querySelector(".text").textContent : "";
    form.elements.points.value = li ? parseFloat(li.querySelector(".points").textContent) : "";
    form.elements.text.focus();
  }
  document.querySelectorAll("button.edit").forEach((b) => b.addEventListener("click", () => editItem(b.closest("li"))));
  document.getElementById("add-item").addEventListener("click", () => editItem(null));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await flush();
      await post("/api/q/" + encodeURIComponent(q) + "/rubric", {id: form.elements.id.value || null,
        text: form.elements.text.value, points: parseFloat(form.elements.points.value)});
      window.location.reload();
    } catch (e) { show("пункт не сохранён: " + e.message, true); }
  });
  document.getElementById("ungraded").addEventListener("change", () => go(root.dataset.toggle));
  document.addEventListener("keydown", (event) => {
    const typing = ["TEXTAREA", "INPUT"].includes(event.target.tagName) && event.target.type !== "checkbox";
    if (event.key === "Escape") { event.target.blur(); return; }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "j" || event.key === "ArrowRight") { event.preventDefault(); go(root.dataset.next); }
    else if (event.key === "k" || event.key === "ArrowLeft") { event.preventDefault(); go(root.dataset.prev); }
    else if (event.key === "c") { event.preventDefault(); comment.focus(); }
    else if (event.key === "u") { event.preventDefault(); go(root.dataset.toggle); }
    else if (/^[1-9]$/.test(event.key)) {
      const box = boxes[Number(event.key) - 1];
      if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change")); }
    }
  });
})();
