// The Documents pages: document status, live. The workspace socket (/ws/workspace/) carries
// {"type": "document", "id", "status", "error"?, "chunk_count"?, "title"?} after every change,
// and {"type": "embedding_index", …} while the workspace switches embedding models.
// A row on the page is updated at once (status badge, reason), then the page's live part (the
// table, or the document's summary) is read again from the server, which adds rows that other
// members added, removes deleted ones and shows chunk counts. Without a socket the page says
// so and offers a reload; it reconnects with backoff and catches up when it does.
// Dropping files anywhere on the list page fills the upload form's file input and submits it.

const root = document.querySelector("[data-live-documents]");
const LABELS = {
  queued: "Queued", fetching: "Fetching", parsing: "Parsing", chunking: "Chunking", embedding: "Embedding",
  ready: "Ready", paused: "Paused", failed: "Failed",
};
const SETTLED = new Set(["ready", "paused", "failed"]);

document.documentElement.classList.add("js");

if (root) {
  live(root);
  const form = document.getElementById("upload-form");
  if (form) uploads(form);
}

function live(root) {
  const target = root.dataset.liveTarget;
  const offline = document.getElementById("live-off");
  const documentId = root.dataset.document ? Number(root.dataset.document) : null;
  let socket = null;
  let retry = 1000;
  let refreshTimer = null;
  let everOpened = false;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${root.dataset.socket}`);
    socket.addEventListener("open", () => {
      retry = 1000;
      if (offline) offline.hidden = true;
      root.dataset.live = "on";
      if (everOpened) refresh(); // catch up on what happened while disconnected
      everOpened = true;
    });
    socket.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data && data.type === "document") changed(data);
      if (data && data.type === "embedding_index") switching(data);
    });
    socket.addEventListener("close", (event) => {
      root.dataset.live = "off";
      if (offline) offline.hidden = false;
      if (event.code === 4401 || event.code === 4404) return; // logged out or not a member
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }

  function changed(event) {
    if (documentId !== null && event.id !== documentId) return;
    const holders = root.querySelectorAll(`[data-document-id="${event.id}"]`);
    if (event.status === "deleted") {
      if (documentId !== null) {
        showStale("This document was deleted.");
        return;
      }
    } else {
      holders.forEach((holder) => update(holder, event));
    }
    if (documentId !== null && event.status === "ready") showStale();
    scheduleRefresh();
  }

  // {"type": "embedding_index", status, model, target, done, total, error}: the model switch.
  function switching(event) {
    const box = root.querySelector("[data-embedding-index]");
    if (!box) return;
    box.hidden = !event.model;
    box.querySelector('[data-field="model"]').textContent = event.model;
    const panel = box.querySelector('[data-field="switch"]');
    panel.hidden = event.status === "idle";
    const n = (x) => Number(x || 0).toLocaleString("en-US");
    box.querySelector('[data-field="switch-text"]').textContent =
      event.status === "failed"
        ? `The switch to ${event.target} stopped: ${event.error}`
        : `Switching to ${event.target}: ${n(event.done)} of ${n(event.total)} chunks embedded. ` +
          `Search keeps using ${event.model} until every chunk is done.`;
    const bar = box.querySelector('[data-field="progress"]');
    bar.max = Math.max(1, event.total || 0);
    bar.value = Math.min(event.done || 0, bar.max);
  }

  function update(holder, event) {
    const badge = holder.querySelector('[data-field="status"]');
    if (badge && event.status) {
      badge.className = `status status-${event.status}`;
      badge.dataset.status = event.status;
      badge.textContent = LABELS[event.status] || event.status;
    }
    const error = holder.querySelector('[data-field="error"]');
    if (error && "error" in event) {
      error.textContent = event.error || "";
      error.hidden = !event.error;
    }
    const chunks = holder.querySelector('[data-field="chunk_count"]');
    if (chunks && typeof event.chunk_count === "number") {
      chunks.textContent = event.chunk_count.toLocaleString("en-US");
    }
  }

  function showStale(text) {
    const stale = root.querySelector('[data-testid="chunks-stale"]');
    if (!stale) return;
    if (text) stale.firstChild.textContent = `${text} `;
    stale.hidden = false;
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 250);
  }

  async function refresh() {
    const region = document.getElementById(target);
    if (!region) return;
    try {
      const response = await fetch(location.href, {
        headers: { "HX-Request": "true", "HX-Target": target },
        credentials: "same-origin",
      });
      if (!response.ok) return; // e.g. the document was deleted: its row keeps its last state
      region.innerHTML = await response.text();
    } catch {
      // the next event or reconnect tries again
    }
  }

  connect();
}

function uploads(form) {
  const input = form.querySelector('input[type="file"]');
  const errors = document.getElementById("upload-errors");
  const overlay = document.getElementById("drop-overlay");
  const maxFiles = Number(form.dataset.maxFiles);
  const maxFileBytes = Number(form.dataset.maxFileBytes);
  const maxUploadBytes = Number(form.dataset.maxUploadBytes);
  let depth = 0;

  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");

  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    input.files = event.dataTransfer.files;
    form.requestSubmit();
  });

  form.addEventListener("submit", (event) => {
    // The server checks all of this too; checking here spares a long upload bound to fail.
    const files = Array.from(input.files || []);
    const problems = [];
    if (files.length > maxFiles) {
      problems.push(`You chose ${files.length} files; upload at most ${maxFiles} at a time.`);
    }
    for (const file of files) {
      if (file.size > maxFileBytes) {
        problems.push(`“${file.name}” is ${size(file.size)}; the limit is ${size(maxFileBytes)} per file.`);
      }
    }
    const total = files.reduce((sum, file) => sum + file.size, 0);
    if (total > maxUploadBytes) {
      problems.push(`These files are ${size(total)}; one upload carries at most ${size(maxUploadBytes)}.`);
    }
    if (problems.length) {
      event.preventDefault();
      errors.replaceChildren(
        ...[...problems, "Nothing was added."].map((text) => {
          const p = document.createElement("p");
          p.className = "error";
          p.setAttribute("role", "alert");
          p.dataset.testid = "upload-error";
          p.textContent = text;
          return p;
        }),
      );
      return;
    }
    form.classList.add("busy");
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    button.textContent = files.length > 1 ? `Uploading ${files.length} files…` : "Uploading…";
  });
  // Back from the next page (bfcache): the form is usable again.
  window.addEventListener("pageshow", () => {
    const button = form.querySelector('button[type="submit"]');
    form.classList.remove("busy");
    button.disabled = false;
    button.textContent = "Upload";
  });
}

function size(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toLocaleString("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 })} MB`;
  return `${bytes.toLocaleString("en-US")} bytes`;
}
