// Keyboard shortcuts, click-to-reveal (audited server-side) and live SLA timers.
// Every action is also a real button or form, so the page works by Tab and Enter alone.
(() => {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  function revealAll(wraps) {
    wraps.forEach((w) => {
      if (!w.classList.contains("concealed")) return;
      w.classList.remove("concealed");
      w.setAttribute("aria-pressed", "true");
      fetch(w.dataset.revealUrl, { method: "POST", headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" })
        .then((r) => { if (r.ok) showOriginal(w); });
    });
  }

  // The server serves a blurred preview until the reveal is recorded; then load the original.
  function showOriginal(w) {
    const img = w.querySelector("img[data-original]");
    if (img) img.src = img.dataset.original;
    const audio = w.nextElementSibling;
    if (audio instanceof HTMLAudioElement && audio.dataset.src) {
      audio.src = audio.dataset.src;
      w.hidden = true;
    }
  }

  document.querySelectorAll(".media-wrap, .audio-reveal").forEach((w) => {
    w.addEventListener("click", () => revealAll([w]));
  });

  // A transcript timestamp plays its part's audio from there, once the audio is revealed.
  document.querySelectorAll(".transcript button.ts[data-seek-ms]").forEach((b) => {
    b.addEventListener("click", () => {
      const audio = b.closest(".part")?.querySelector("audio");
      if (!(audio instanceof HTMLAudioElement) || !audio.getAttribute("src")) return;
      audio.currentTime = Number(b.dataset.seekMs) / 1000;
      audio.play().catch(() => {});
    });
  });

  const click = (id) => { const el = document.getElementById(id); if (el) { el.click(); return true; } return false; };

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const typing = t instanceof HTMLTextAreaElement || (t instanceof HTMLInputElement && t.type !== "checkbox");
    if (typing) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    const page = document.body.dataset.page;
    const key = ev.key.toLowerCase();
    let done = false;
    if (page === "queue" && key === "c") done = click("claim");
    if (page === "task") {
      if (key === "a") done = click("verdict-allow");
      else if (key === "b") done = click("verdict-block");
      else if (key === "e") done = click("escalate");
      else if (key === "s") done = click("skip");
      else if (key === "r") { revealAll(document.querySelectorAll(".media-wrap, .audio-reveal")); done = true; }
      else if (key === "n") { document.getElementById("note")?.focus(); done = true; }
      else if (/^[1-9]$/.test(key)) {
        const box = document.getElementById("cat-" + key);
        if (box) { box.checked = !box.checked; done = true; }
      }
    }
    if (done) ev.preventDefault();
  });

  function tick() {
    const now = Date.now();
    document.querySelectorAll("time.sla[data-due]").forEach((el) => {
      let s = Math.round((Date.parse(el.dataset.due) - now) / 1000);
      const over = s < 0; s = Math.abs(s);
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
      const text = h >= 24 ? `${Math.floor(h / 24)}d ${h % 24}h` : h ? `${h}h ${String(m).padStart(2, "0")}m` : `${m}m ${String(sec).padStart(2, "0")}s`;
      el.textContent = text + (over ? " overdue" : " left");
      el.classList.toggle("bad", over);
    });
  }
  tick();
  setInterval(tick, 1000);
})();
