// Cairn's dashboard: live progress of running jobs over Server-Sent Events
// (the API's /v1/jobs/{id}/events, which the session cookie opens). Pages
// work without it; this only keeps the bars moving.
"use strict";
function follow(el) {
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
    }
  };
  source.addEventListener("job", show);
  source.addEventListener("end", show);
  source.onerror = () => { source.close(); };
}
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-job]").forEach(follow);
});
