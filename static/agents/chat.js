// The chat page: a WebSocket carries messages out and typed answer events in. While an answer
// streams, streaming-markdown renders it progressively with DOM calls only (text nodes, no
// innerHTML of model output; links limited to http(s)/mailto, no images). When it ends, the
// server's sanitised render replaces it.
import * as smd from "/static/vendor/streaming-markdown.min.js";

const main = document.getElementById("chat-main");
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = form?.querySelector("textarea");
const errorBox = document.getElementById("composer-error");
const stopButton = document.getElementById("stop");
const regenerateButton = document.getElementById("regenerate");
const conversation = main?.dataset.conversation;
const SAFE_URL = /^(https?:|mailto:)/i;

let socket = null;
let current = null; // {id, node, body, parser, text}

function safeRenderer(root) {
  const renderer = smd.default_renderer(root);
  const setAttr = renderer.set_attr;
  renderer.set_attr = (data, type, value) => {
    if ((type === smd.HREF || type === smd.SRC) && !SAFE_URL.test(String(value).trim())) return;
    if (type === smd.SRC) return; // no images: they would load from anywhere
    setAttr(data, type, value);
  };
  return renderer;
}

function showError(text) {
  if (errorBox) errorBox.textContent = text || "";
}

function setStreaming(on) {
  if (stopButton) stopButton.hidden = !on;
  if (regenerateButton) regenerateButton.hidden = on;
  form?.classList.toggle("busy", on);
}

function addCopyButtons(scope) {
  for (const pre of scope.querySelectorAll("pre")) {
    if (pre.querySelector("button.copy")) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy small";
    button.textContent = "Copy";
    button.addEventListener("click", () => {
      navigator.clipboard?.writeText(pre.querySelector("code")?.textContent || pre.textContent);
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    });
    pre.prepend(button);
  }
}

function articleFor(id, role) {
  const node = document.createElement("article");
  node.className = `msg msg-${role}`;
  node.id = `message-${id}`;
  node.dataset.messageId = id;
  node.dataset.testid = `message-${role}`;
  node.setAttribute("data-testid", `message-${role}`);
  if (role === "assistant") {
    const steps = document.createElement("div");
    steps.className = "msg-steps";
    node.append(steps);
  }
  const body = document.createElement("div");
  body.className = "msg-body markdown";
  body.setAttribute("data-testid", "message-body");
  node.append(body);
  if (role === "assistant") {
    const sources = document.createElement("div");
    sources.className = "msg-sources";
    node.append(sources);
    const meta = document.createElement("footer");
    meta.className = "msg-meta";
    const status = document.createElement("span");
    status.className = "msg-status";
    status.setAttribute("data-testid", "message-status");
    meta.append(status);
    node.append(meta);
  }
  list.append(node);
  node.scrollIntoView({ block: "end" });
  return { node, body };
}

function statusOf(node, text) {
  const span = node.querySelector(".msg-status");
  if (span) span.textContent = text;
}

function onEvent(event) {
  // Frames of an answer resumed after an approval reach every chat page of its owner: only
  // the page showing that answer uses them.
  if (event.resumed && !document.getElementById(`message-${event.resumed}`)) return;
  switch (event.type) {
    case "resumed": {
      const node = document.getElementById(`message-${event.message_id}`);
      const body = node.querySelector(".msg-body");
      const more = document.createElement("div");
      body.append(more);
      node.dataset.status = "streaming";
      current = { id: event.message_id, node, body: more, parser: smd.parser(safeRenderer(more)), text: "" };
      statusOf(node, "resuming after the decision…");
      setStreaming(true);
      break;
    }
    case "message": {
      const { body } = articleFor(event.id, "user");
      body.innerHTML = event.html; // rendered and sanitised by the server (rendering.py)
      break;
    }
    case "answer": {
      if (event.regenerate) {
        const previous = list.querySelector(".msg-assistant:not(.superseded):last-of-type");
        previous?.classList.add("superseded");
      }
      const { node, body } = articleFor(event.message_id, "assistant");
      node.dataset.status = "streaming";
      current = { id: event.message_id, node, body, parser: smd.parser(safeRenderer(body)), text: "" };
      statusOf(node, "writing…");
      setStreaming(true);
      break;
    }
    case "status":
      if (current && current.text === "") statusOf(current.node, event.text);
      break;
    case "token":
      if (!current || current.id !== event.message_id) break;
      if (current.text === "") statusOf(current.node, "writing…");
      current.text += event.text;
      smd.parser_write(current.parser, event.text);
      break;
    case "tool_call": {
      // A tool step as a collapsible card; its result fills it in. Text only: arguments and
      // summaries come from the model and the tool, never parsed as HTML.
      if (!current || current.id !== event.message_id) break;
      const held = current.node.querySelector(`.tool-step[data-call-id="${CSS.escape(event.call_id)}"]`);
      if (held) { // a held call, called again once decided
        held.querySelector(".tool-status").textContent = "running…";
        break;
      }
      const card = document.createElement("details");
      card.className = "tool-step tool-running";
      card.dataset.callId = event.call_id;
      card.dataset.tool = event.name;
      card.dataset.status = "running";
      card.setAttribute("data-testid", "tool-step");
      const summary = document.createElement("summary");
      const name = document.createElement("span");
      name.className = "tool-name";
      name.textContent = event.name;
      const state = document.createElement("span");
      state.className = "tool-status";
      state.setAttribute("data-testid", "tool-status");
      state.textContent = "running…";
      summary.append(name, " ", state);
      const args = document.createElement("pre");
      args.className = "tool-args";
      args.textContent = JSON.stringify(event.args, null, 2);
      card.append(summary, args);
      current.node.querySelector(".msg-steps")?.append(card);
      statusOf(current.node, `using ${event.name}…`);
      break;
    }
    case "tool_result": {
      if (!current || current.id !== event.message_id) break;
      const card = current.node.querySelector(`.tool-step[data-call-id="${CSS.escape(event.call_id)}"]`);
      if (!card) break;
      card.className = `tool-step tool-${event.status}`;
      card.dataset.status = event.status;
      card.querySelector(".tool-status").textContent = event.status;
      card.querySelector(".tool-summary")?.remove();
      const result = document.createElement("p");
      result.className = "muted tool-summary";
      result.textContent = event.summary;
      card.append(result);
      break;
    }
    case "citation": {
      // A passage the answer cites, as soon as it does; `done` replaces the list with the
      // server's render. Built with textContent: document text is never parsed as HTML.
      if (!current || current.id !== event.message_id) break;
      const holder = current.node.querySelector(".msg-sources");
      let list = holder.querySelector("ol");
      if (!list) {
        const box = document.createElement("details");
        box.className = "sources";
        box.open = true;
        box.setAttribute("data-testid", "sources");
        const summary = document.createElement("summary");
        summary.textContent = "Sources";
        list = document.createElement("ol");
        box.append(summary, list);
        holder.append(box);
      }
      const item = document.createElement("li");
      item.value = event.n;
      item.setAttribute("data-testid", "source");
      const link = document.createElement("a");
      link.href = event.url;
      link.textContent = event.title || "Untitled document";
      item.append(link);
      if (event.heading) item.append(` › ${event.heading}`);
      if (event.page) item.append(` · page ${event.page}`);
      list.append(item);
      break;
    }
    case "thinking": {
      if (!current) break;
      let box = current.node.querySelector("details.thinking");
      if (!box) {
        box = document.createElement("details");
        box.className = "thinking";
        const summary = document.createElement("summary");
        summary.textContent = "Thinking";
        box.append(summary, document.createElement("div"));
        current.node.prepend(box);
      }
      box.lastChild.append(document.createTextNode(event.text));
      break;
    }
    case "error":
      if (event.message_id && current && current.id === event.message_id) {
        statusOf(current.node, `error: ${event.message}`);
        if (event.budget) showError(event.budget.resets_at ? `${event.message} Resets at ${event.budget.resets_at}.` : event.message);
      } else {
        showError(event.message);
        setStreaming(current !== null);
      }
      break;
    case "done": {
      const node = document.getElementById(`message-${event.message_id}`);
      if (!node) break;
      if (current?.parser) smd.parser_end(current.parser);
      node.querySelector(".msg-body").innerHTML = event.html; // the server's sanitised render
      const steps = node.querySelector(".msg-steps");
      if (steps && event.steps_html) {
        steps.innerHTML = event.steps_html; // our template, escaped
        window.htmx?.process(steps); // Approve / Reject / Undo
      }
      const sources = node.querySelector(".msg-sources");
      if (sources) sources.innerHTML = event.sources_html || ""; // our template, escaped text
      node.dataset.status = event.status;
      const shown = { complete: "", stopped: "stopped", waiting: "waiting for approval" };
      statusOf(node, event.status in shown ? shown[event.status] : `error: ${event.error}`);
      if (event.offline) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "offline local model";
        node.querySelector(".msg-meta")?.append(badge);
      }
      const meta = node.querySelector(".msg-meta");
      if (meta && event.feedback_html) {
        meta.insertAdjacentHTML("beforeend", event.feedback_html); // our template, not model text
        window.htmx?.process(meta);
      }
      addCopyButtons(node);
      current = null;
      setStreaming(false);
      break;
    }
    case "title": {
      const title = document.querySelector('[data-testid="conversation-title"]');
      if (title) title.textContent = event.title;
      const link = document.querySelector(`[data-conversation-id="${event.conversation}"]`);
      if (link) link.textContent = event.title;
      break;
    }
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}${main.dataset.socket}`);
  socket.addEventListener("message", (message) => onEvent(JSON.parse(message.data)));
  socket.addEventListener("close", () => {
    if (current) statusOf(current.node, "connection lost — the answer was stopped");
    current = null;
    setStreaming(false);
    socket = null;
  });
  return new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
}

async function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) await connect();
  socket.send(JSON.stringify(frame));
}

if (form && input) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return showError(""); // empty: nothing is sent
    showError("");
    send({ type: "send", conversation: Number(conversation), text });
    input.value = "";
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton?.addEventListener("click", () => send({ type: "stop" }));
  regenerateButton?.addEventListener("click", () => send({ type: "regenerate", conversation: Number(conversation) }));
  addCopyButtons(list);
  connect();
}
