// Cairn's dashboard: live progress of running jobs over Server-Sent Events
// (the API's /v1/jobs/{id}/events, which the session cookie opens). Pages
// work without it; this only keeps the bars moving.
"use strict";
const TERMINAL = ["succeeded", "failed", "cancelled"];
function follow(el) {
  // A job that had ended when the page was made has nothing to follow.
  if (TERMINAL.includes(el.dataset.state)) { return; }
  const id = el.dataset.job;
  const bar = el.querySelector("progress");
  const text = el.querySelector("[data-role=text]");
  const source = new EventSource("/v1/jobs/" + encodeURIComponent(id) + "/events");
  const show = (ev) => {
    const job = JSON.parse(ev.data);
    const pct = job.state === "succeeded" ? 100 : job.progress.percent;
    bar.value = pct;
    bar.setAttribute("aria-valuenow", String(pct));
    text.textContent = job.state + " · " + job.progress.phase + " · " + pct + "%";
    el.dataset.state = job.state;
    if (ev.type === "end") {
      source.close();
      if (job.error) { text.textContent += " · " + job.error.message; }
      // A job's own page shows its result once it has one.
      if (el.hasAttribute("data-reload")) { setTimeout(() => location.reload(), 700); }
    }
  };
  source.addEventListener("job", show);
  source.addEventListener("end", show);
  source.onerror = () => { source.close(); };
}
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-job]").forEach(follow);
});
