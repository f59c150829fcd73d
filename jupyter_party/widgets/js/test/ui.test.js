import { afterEach, beforeEach, expect, it } from "vitest";
import { createPartyUI, importSource } from "../src/ui.js";
import { FakeWebSocket, fakeModel, setPageConfig } from "./fakes.js";

let el;
beforeEach(() => {
  FakeWebSocket.instances = [];
  el = document.createElement("div");
  document.body.append(el);
  setPageConfig({ baseUrl: "/jp/", token: "t" });
});
afterEach(() => {
  el.remove();
  setPageConfig(null);
});

const POLL = `
export default {
  render({ model, el, room }) {
    el.innerHTML = '<b></b><button>vote</button>';
    el.querySelector("b").textContent = model.get("party") + "/" + model.get("room") + " " + model.get("url");
    el.querySelector("button").onclick = () => room.send("vote");
    room.on("message", (data) => { el.querySelector("b").textContent = "got " + data; });
    return () => { el.dataset.cleaned = "yes"; };
  },
};`;

it("imports the party's module from source", async () => {
  const mod = await importSource("export default { answer: 42 };");
  expect(mod.default.answer).toBe(42);
});

it("runs the party's render with a room handle", async () => {
  const model = fakeModel({ party: "poll", room: "q1", ui_esm: POLL });
  const cleanup = await createPartyUI({ WebSocket: FakeWebSocket }).render({ model, el });
  const socket = FakeWebSocket.last();
  expect(el.querySelector("b").textContent).toBe(
    `poll/q1 ws://${location.host}/jp/parties/poll/q1`,
  );
  socket.open();
  expect(model.get("status")).toBe("connected");
  el.querySelector("button").click();
  expect(socket.sent).toEqual(["vote"]);
  socket.receive("3 votes");
  expect(el.querySelector("b").textContent).toBe("got 3 votes");
  await cleanup();
  expect(el.dataset.cleaned).toBe("yes");
  expect(socket.closed).toEqual({ code: 1000, reason: "widget closed" });
});

it("shows an error when the party's module fails", async () => {
  const model = fakeModel({ party: "poll", room: "q1", ui_esm: "export default { render() { throw new Error('boom'); } };" });
  await createPartyUI({ WebSocket: FakeWebSocket }).render({ model, el });
  expect(el.textContent).toContain("poll: its UI module failed");
  expect(el.textContent).toContain("boom");
});

it("gives the first listener what the room sent while the module was loading", async () => {
  let loaded;
  const loading = new Promise((resolve) => (loaded = resolve));
  const model = fakeModel({ party: "quiz", room: "class", ui_esm: "unused" });
  const importModule = () => loading;
  const rendering = createPartyUI({ WebSocket: FakeWebSocket, importModule }).render({ model, el });
  const socket = FakeWebSocket.last();
  socket.open();
  socket.receive("question"); // on_connect's message, before render listens
  const seen = [];
  loaded({ default: { render: ({ room }) => void room.on("message", (data) => seen.push(data)) } });
  await rendering;
  socket.receive("tally");
  await Promise.resolve(); // the kept messages are handed over on a microtask
  expect(seen).toEqual(["question", "tally"]);
});

it("keeps nothing once render returned without listening", async () => {
  let room;
  const model = fakeModel({ party: "quiz", room: "class", ui_esm: "unused" });
  const importModule = async () => ({ default: { render: (args) => void (room = args.room) } });
  await createPartyUI({ WebSocket: FakeWebSocket, importModule }).render({ model, el });
  const socket = FakeWebSocket.last();
  socket.open();
  socket.receive("before anyone listened");
  const seen = [];
  room.on("message", (data) => seen.push(data)); // later, e.g. from a click
  await Promise.resolve();
  socket.receive("after");
  expect(seen).toEqual(["after"]);
});
