// The operator desk's only script: a live queue (Server-Sent Events) and the recording
// player beside its transcript. No framework, no build step, no CDN.
"use strict";

function liveQueue(rows) {
  if (!window.EventSource) return;
  const refresh = () =>
    fetch("/queue/rows" + window.location.search, { credentials: "same-origin" })
      .then((r) => {
        if (!r.ok) return Promise.reject(r.status);
        const total = document.getElementById("total");
        if (total && r.headers.get("x-total-count")) total.textContent = r.headers.get("x-total-count");
        return r.text();
      })
      .then((html) => {
        const before = new Set([...rows.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id));
        rows.innerHTML = html;
        for (const tr of rows.querySelectorAll("tr[data-id]")) {
          if (!before.has(tr.dataset.id)) tr.classList.add("new");
        }
      })
      .catch(() => {});
  const es = new EventSource("/api/v1/events");
  const live = document.getElementById("live");
  es.onopen = () => live && live.classList.add("on");
  es.onerror = () => live && live.classList.remove("on");
  for (const name of ["committed", "revised", "progress", "lagged"]) {
    es.addEventListener(name, refresh);
  }
}

function player(audio, list) {
  const segments = [...list.querySelectorAll("li.segment")];
  for (const li of segments) {
    li.addEventListener("click", () => {
      audio.currentTime = parseFloat(li.dataset.start);
      const p = audio.play();
      if (p && p.catch) p.catch(() => {});
    });
  }
  const highlight = () => {
    const t = audio.currentTime;
    for (const li of segments) {
      const on = t >= parseFloat(li.dataset.start) && t < parseFloat(li.dataset.end);
      li.classList.toggle("playing", on);
    }
  };
  audio.addEventListener("timeupdate", highlight);
  audio.addEventListener("seeked", highlight);
}

document.addEventListener("DOMContentLoaded", () => {
  const rows = document.getElementById("rows");
  if (rows) liveQueue(rows);
  const audio = document.getElementById("player");
  const list = document.getElementById("segments");
  if (audio && list) player(audio, list);
});
