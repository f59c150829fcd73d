import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createConsole, FLUSH_MS, MAX_MESSAGES } from "../src/console.js";
import { roomUrl } from "../src/transport.js";
import { FakeWebSocket, fakeFrames, fakeModel, setPageConfig, tick } from "./fakes.js";

let el;
let frames;
beforeEach(() => {
  FakeWebSocket.instances = [];
  frames = fakeFrames();
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => {
  el.remove();
  setPageConfig(null);
});

const text = (selector) => el.querySelector(selector).textContent;
/** The log entries the kernel was sent (direct mode: deltas, `{type: "log", entries}`). */
const logged = (model) => model.sent.filter((m) => m.content.type === "log").flatMap((m) => m.content.entries);

describe("direct mode (JupyterLab / Notebook 7)", () => {
  const fetch = vi.fn(async () => ({
    ok: true,
    json: async () => ({ rooms: [{ party: "chat", room: "lobby", connections: 3 }] }),
  }));

  function setup(config = { baseUrl: "/jp/", wsUrl: "", token: "tok" }) {
    setPageConfig(config);
    const model = fakeModel();
    const widget = createConsole({ WebSocket: FakeWebSocket, fetch, ...frames });
    const cleanup = widget.render({ model, el });
    return { model, cleanup, socket: FakeWebSocket.last() };
  }

  it("connects to the room URL of the page's server with its token and a stable id", () => {
    const { model, socket } = setup();
    const url = new URL(socket.url);
    expect(`${url.origin}${url.pathname}`).toBe(`ws://${location.host}/jp/parties/chat/lobby`);
    expect(url.searchParams.get("token")).toBe("tok");
    expect(url.searchParams.get("_pk")).toBe(model.get("connection_id"));
    expect(model.get("connection_id")).toMatch(/^[0-9a-f]{32}$/);
    expect(text(".who")).toBe(`you: ${model.get("connection_id").slice(0, 8)}`);
    expect(text(".title")).toBe("chat / lobby");
  });

  it("uses wsUrl when the page sets it, and no token when it has none (cookie auth)", () => {
    const config = { baseUrl: "/user/me/", wsUrl: "wss://hub.example/" };
    expect(roomUrl(config, "a b", "r/1")).toBe("wss://hub.example/user/me/parties/a%20b/r%2F1");
    const { socket } = setup({ baseUrl: "/", wsUrl: "" });
    expect(new URL(socket.url).searchParams.has("token")).toBe(false);
  });

  it("renders status, appends received messages, sends on submit", async () => {
    const { model, socket } = setup();
    expect(text(".status")).toBe("connecting");
    socket.open();
    expect(text(".status")).toBe("connected");
    expect(model.get("status")).toBe("connected");
    socket.receive('{"type":"message","text":"hello"}');
    socket.receive(new Uint8Array([1, 2, 3]));
    frames.run();
    const lines = [...el.querySelectorAll(".log div")].map((d) => d.textContent);
    expect(lines.some((l) => l.endsWith('← {"type":"message","text":"hello"}'))).toBe(true);
    expect(lines.at(-1)).toMatch(/← <3 bytes of binary data>$/);
    expect(el.querySelector(".log .in")).not.toBeNull();

    const input = el.querySelector(".message");
    input.value = "hi there";
    el.querySelector("form").dispatchEvent(new Event("submit", { cancelable: true }));
    expect(socket.sent).toEqual(["hi there"]);
    expect(input.value).toBe("");
    frames.run();
    expect(el.querySelector(".log .out").textContent).toMatch(/→ hi there$/);
    await tick(FLUSH_MS + 20); // the entries reach the kernel as one delta
    expect(logged(model).map((e) => [e.dir, e.text])).toEqual([
      ["info", "connected"],
      ["in", '{"type":"message","text":"hello"}'],
      ["in", "<3 bytes of binary data>"],
      ["out", "hi there"],
    ]);
    expect(model.sent.filter((m) => m.content.type === "log")).toHaveLength(1);
  });

  it("sends the kernel deltas in batches and paints once per frame, whatever the rate", async () => {
    const { model, socket } = setup();
    socket.open();
    await tick(FLUSH_MS + 20);
    const before = { saves: model.saves, sent: model.sent.length };
    for (let n = 0; n < 1000; n++) socket.receive(`m${n}`);
    expect(frames.pending).toBe(1); // one paint asked for, not one per message
    expect(model.saves).toBe(before.saves); // the whole log is never synced per message
    await tick(FLUSH_MS + 20);
    const deltas = model.sent.slice(before.sent);
    expect(deltas).toHaveLength(1);
    // the last MAX_MESSAGES of the burst (older ones had already scrolled out)
    expect(deltas[0].content.entries.map((e) => e.text)).toEqual(
      Array.from({ length: MAX_MESSAGES }, (_, i) => `m${1000 - MAX_MESSAGES + i}`),
    );
    frames.run();
    expect(el.querySelectorAll(".log div")).toHaveLength(MAX_MESSAGES);
    expect(el.querySelector(".log div:last-child").textContent).toMatch(/← m999$/);
  });

  it("shows presence: its own id and the room's connection count from the admin API", async () => {
    const { model, socket } = setup();
    socket.open();
    await tick(350);
    expect(fetch).toHaveBeenCalledWith(`${location.origin}/jp/party-api/rooms`, expect.anything());
    expect(fetch.mock.calls[0][1].headers).toEqual({ Authorization: "token tok" });
    expect(model.get("connections")).toBe(3);
    expect(text(".presence")).toContain(`you (${model.get("connection_id").slice(0, 8)})`);
    expect(text(".presence")).toContain("3 connections in the room");
  });

  it("keeps the rendered log bounded, frame after frame", () => {
    const { socket } = setup();
    socket.open();
    for (let n = 0; n < MAX_MESSAGES + 20; n++) {
      socket.receive(`m${n}`);
      if (n % 7 === 0) frames.run();
    }
    frames.run();
    const lines = [...el.querySelectorAll(".log div")];
    expect(lines).toHaveLength(MAX_MESSAGES);
    expect(lines[0].textContent).toMatch(/← m20$/);
    expect(lines.at(-1).textContent).toMatch(/← m219$/);
  });

  it("reconnects with the same id after a drop, but not after a refusal", async () => {
    vi.useFakeTimers();
    try {
      const { model, socket } = setup();
      socket.open();
      socket.serverClose(1006);
      expect(text(".status")).toBe("closed (1006), reconnecting");
      vi.advanceTimersByTime(600);
      const again = FakeWebSocket.last();
      expect(again).not.toBe(socket);
      expect(new URL(again.url).searchParams.get("_pk")).toBe(model.get("connection_id"));
      again.serverClose(4404, "unknown party");
      expect(text(".status")).toBe("closed (4404: unknown party)");
      vi.advanceTimersByTime(60000);
      expect(FakeWebSocket.last()).toBe(again);
    } finally {
      vi.useRealTimers();
    }
  });

  it("shares one connection between views and closes it with the last", () => {
    setPageConfig({ baseUrl: "/", token: "t" });
    const model = fakeModel();
    const widget = createConsole({ WebSocket: FakeWebSocket, fetch, ...frames });
    const first = widget.render({ model, el });
    const other = document.createElement("div");
    const second = widget.render({ model, el: other });
    expect(FakeWebSocket.instances).toHaveLength(1);
    FakeWebSocket.last().open();
    FakeWebSocket.last().receive("x");
    frames.run();
    expect(other.querySelector(".log").textContent).toContain("← x");
    expect(el.querySelector(".log").textContent).toContain("← x");
    first();
    expect(FakeWebSocket.last().closed).toBeNull();
    second();
    expect(FakeWebSocket.last().closed).toEqual({ code: 1000, reason: "widget closed" });
    expect(model.listenerCount("change:messages")).toBe(0);
  });
});

describe("relay mode (no jupyter-config-data: VS Code, Colab)", () => {
  it("asks the kernel to connect, renders the kernel's log, sends through the kernel", () => {
    const model = fakeModel({ connection_id: "k1", messages: [{ dir: "info", text: "earlier", time: 0 }] });
    const cleanup = createConsole({ WebSocket: FakeWebSocket, ...frames }).render({ model, el });
    expect(FakeWebSocket.instances).toHaveLength(0);
    expect(model.sent[0].content).toEqual({ type: "relay-open", id: "k1", query: {} });
    expect(text(".presence")).toContain("via the kernel");
    expect(text(".log")).toMatch(/· earlier$/); // the log the page loaded with the state

    model.set("status", "connected"); // the kernel reports through the model
    model.emit("msg:custom", { type: "log", entries: [{ dir: "in", text: "from the room", time: 0 }] });
    expect(text(".status")).toBe("connected");
    frames.run();
    expect(el.querySelectorAll(".log div")).toHaveLength(2);
    expect(el.querySelector(".log .in").textContent).toMatch(/← from the room$/);
    model.set("messages", [{ dir: "out", text: "assigned in Python", time: 0 }]); // the whole log
    frames.run();
    expect(el.querySelectorAll(".log div")).toHaveLength(1);
    expect(text(".log")).toMatch(/→ assigned in Python$/);

    el.querySelector(".message").value = "hello";
    el.querySelector("form").dispatchEvent(new Event("submit", { cancelable: true }));
    expect(model.sent.at(-1).content).toEqual({ type: "send", data: "hello" });
    cleanup();
    expect(model.sent.at(-1).content).toEqual({ type: "relay-close" });
  });

  it("is forced by mode=relay even inside JupyterLab", () => {
    setPageConfig({ baseUrl: "/", token: "t" });
    const model = fakeModel({ mode: "relay" });
    createConsole({ WebSocket: FakeWebSocket }).render({ model, el });
    expect(FakeWebSocket.instances).toHaveLength(0);
    expect(model.sent[0].content.type).toBe("relay-open");
  });
});

describe("share links", () => {
  const shareUrl = "https://hub.example/user/me/party-share/chat/lobby?share_token=jps_x";

  function serverFetch(answer, ok = true) {
    return vi.fn(async (url, init = {}) => {
      if (url.endsWith("party-api/share")) return { ok, status: ok ? 201 : 403, json: async () => answer };
      return { ok: true, json: async () => ({ rooms: [] }) };
    });
  }

  it("asks the page's server (direct mode) and shows a clickable, copyable link", async () => {
    setPageConfig({ baseUrl: "/jp/", wsUrl: "", token: "tok" });
    const fetch = serverFetch({ url: shareUrl, local: false });
    const clipboard = { writeText: vi.fn(async () => {}) };
    const model = fakeModel();
    createConsole({ WebSocket: FakeWebSocket, fetch, clipboard }).render({ model, el });
    el.querySelector(".share-read").click();
    await tick();
    const [url, init] = fetch.mock.calls.find(([u]) => u.endsWith("party-api/share"));
    expect(url).toBe(`${location.origin}/jp/party-api/share`);
    expect(init.method).toBe("POST");
    expect(init.headers.Authorization).toBe("token tok");
    expect(JSON.parse(init.body)).toEqual({ party: "chat", room: "lobby", access: "read" });
    expect(model.get("share")).toEqual({ url: shareUrl, access: "read", local: false });
    const link = el.querySelector(".share a");
    expect([link.href, link.target, link.rel]).toEqual([shareUrl, "_blank", "noopener noreferrer"]);
    expect(text(".share .link")).toContain("read-only link");
    expect(el.querySelector(".share .note")).toBeNull();
    el.querySelector(".share .copy").click();
    await tick();
    expect(clipboard.writeText).toHaveBeenCalledWith(shareUrl);
    expect(text(".share .copy")).toBe("Copied");
  });

  it("says when a link is local, and why there is none", async () => {
    setPageConfig({ baseUrl: "/", wsUrl: "", token: "tok" });
    const model = fakeModel();
    const fetch = serverFetch({ url: "http://127.0.0.1:8888/party-share/chat/lobby?x", local: true });
    createConsole({ WebSocket: FakeWebSocket, fetch }).render({ model, el });
    el.querySelector(".share-write").click();
    await tick();
    expect(text(".share .note")).toContain("PartyApp.public_url");
    const refused = serverFetch({ message: "no such party" }, false);
    const other = document.createElement("div");
    createConsole({ WebSocket: FakeWebSocket, fetch: refused }).render({ model: fakeModel(), el: other });
    other.querySelector(".share-write").click();
    await tick();
    expect(other.querySelector(".share .link").textContent).toBe("no share link: no such party");
  });

  it("asks the kernel in relay mode, and shows what the kernel made", () => {
    const model = fakeModel();
    createConsole({ WebSocket: FakeWebSocket }).render({ model, el });
    el.querySelector(".share-write").click();
    expect(model.sent.at(-1).content).toEqual({ type: "share", access: "write" });
    model.set("share", { url: shareUrl, access: "write", local: false });
    expect(el.querySelector(".share a").href).toBe(shareUrl);
  });
});
