// The workspace socket on every workspace page: the approvals badge, live (an action asked for
// or decided: the badge refetches its number, the inbox reloads), and run progress (a run's
// page and the runs list reload their part).
(() => {
  // Boosted navigation swaps the body: find the badge anew each time.
  const current = () => document.querySelector("[data-approvals-badge]");
  const badge = current();
  if (!badge) return;
  const countUrl = badge.dataset.countUrl;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let timer = null;

  async function refresh() {
    const reply = await fetch(countUrl, { headers: { Accept: "application/json" } });
    if (!reply.ok) return;
    const { open } = await reply.json();
    const shown = current();
    if (!shown) return;
    shown.textContent = open ? String(open) : "";
    shown.hidden = !open;
    shown.dataset.count = String(open);
  }

  function connect() {
    const socket = new WebSocket(`${scheme}://${location.host}/ws/workspace/`);
    socket.addEventListener("open", () => {
      timer = setInterval(() => socket.send(JSON.stringify({ type: "ping" })), 30000);
    });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "run") {  // a run's page or list reloads its part
        document.body.dispatchEvent(new CustomEvent("run-changed", { detail: event }));
        return;
      }
      if (event.type !== "approval") return;
      refresh();
      document.body.dispatchEvent(new CustomEvent("approvals-changed", { detail: event }));
    });
    socket.addEventListener("close", () => {
      clearInterval(timer);
      setTimeout(connect, 5000); // a restarted server: come back, and catch up
      setTimeout(refresh, 5500);
    });
  }
  connect();
})();
