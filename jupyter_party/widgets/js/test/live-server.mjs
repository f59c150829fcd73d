// The committed bundles (../static) against a real Jupyter server, in jsdom with a real
// WebSocket (`ws`): two doc views edit one YServer room, a console chats. Driven by
// tests/test_widgets_js.py: node test/live-server.mjs BASE_URL TOKEN WS_MODULE_PATH
// Prints one JSON line with what it saw.
import { JSDOM } from "jsdom";

const [base, token, wsPath] = process.argv.slice(2);
const { default: WS } = await import(wsPath);
const origin = new URL(base).origin;
const config = { baseUrl: new URL(base).pathname, wsUrl: "", token };
const dom = new JSDOM(
  `<script id="jupyter-config-data" type="application/json">${JSON.stringify(config)}</script>`,
  { url: `${origin}${config.baseUrl}lab` },
);
for (const name of ["document", "location", "Event"]) globalThis[name] = dom.window[name];
globalThis.window = dom.window;
globalThis.WebSocket = WS;

const { default: docView } = await import("../../static/doc.js");
const { default: roomConsole } = await import("../../static/console.js");

function model(state) {
  const listeners = {};
  return {
    state,
    sent: [], // custom messages to the kernel
    logged() {
      // the console's log entries, as the kernel gets them: deltas ({type: "log", entries})
      return this.sent.filter((m) => m.type === "log").flatMap((m) => m.entries);
    },
    get: (key) => state[key],
    set(key, value) {
      state[key] = value;
      for (const f of listeners[`change:${key}`] || []) f();
    },
    on: (event, f) => (listeners[event] ||= []).push(f),
    off() {},
    send(content) {
      this.sent.push(content);
    },
    save_changes() {},
  };
}
const wait = async (predicate, what) => {
  for (let i = 0; i < 200; i++) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
};
const element = () => document.body.appendChild(document.createElement("div"));

const room = `live-${Date.now()}`;
const ma = model({ party: "ydoc", room, mode: "auto", user: "A" });
const mb = model({ party: "ydoc", room, mode: "auto", user: "B" });
const a = element(), b = element();
const closeA = docView.render({ model: ma, el: a });
const closeB = docView.render({ model: mb, el: b });
await wait(() => ma.state.synced && mb.state.synced, "both doc views synced");
const textarea = a.querySelector("textarea");
textarea.value = "hello from A";
textarea.dispatchEvent(new Event("input"));
await wait(() => b.querySelector("textarea").value === "hello from A", "B to see A's text");
await wait(() => b.querySelector(".presence").textContent.includes("A"), "B to see A");
const response = await fetch(`${base}parties/ydoc/${room}`, {
  headers: { Authorization: `token ${token}` },
});
const serverDoc = await response.json();

const mc = model({ party: "chat", room, mode: "auto", messages: [], connections: -1 });
const c = element();
const closeC = roomConsole.render({ model: mc, el: c });
await wait(() => mc.state.status === "connected", "the console to connect");
c.querySelector(".message").value = "hi";
c.querySelector("form").dispatchEvent(new Event("submit", { cancelable: true }));
await wait(() => mc.logged().some((m) => m.dir === "in" && m.text.includes('"text":"hi"')), "the echo");
await wait(() => mc.state.connections === 1, "the connection count");
const lines = () => [...c.querySelectorAll(".log div")].map((d) => d.className + d.textContent.split(" ").at(-1));
const logged = () => mc.logged().map((m) => m.dir + m.text.split(" ").at(-1));
await wait(() => JSON.stringify(lines()) === JSON.stringify(logged()), "the page to show what the kernel got");

console.log(JSON.stringify({
  serverDoc,
  presenceB: b.querySelector(".presence").textContent,
  console: mc.logged().map((m) => [m.dir, m.text]),
  consolePresence: c.querySelector(".presence").textContent,
}));
closeA();
closeB();
closeC();
process.exit(0);
