// Provisor web UI: the only script. Every page works without it; it adds reading a CSV file into the import form and
// the live events stream.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[type=file][data-fills]")) {
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      const target = document.getElementById(input.dataset.fills);
      if (file && target) file.text().then((text) => { target.value = text; });
    });
  }
  const live = document.getElementById("live");
  if (live && window.EventSource) {
    const source = new EventSource(live.dataset.stream);
    source.onmessage = (event) => {
      const item = document.createElement("li");
      let text = event.data;
      try {
        const e = JSON.parse(event.data);
        text = `${e.time} ${e.client} ${e.device || "-"} ${e.protocol} ${e.method} ${e.file} ${e.status}${e.note ? " " + e.note : ""}`;
      } catch (_) { /* shown as sent */ }
      item.textContent = text;
      live.prepend(item);
      while (live.children.length > 500) live.lastElementChild.remove();
    };
  }
});
