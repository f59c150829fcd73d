import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import { applyTextDiff, createDocView, mapIndex } from "../src/doc.js";
import { FakeWebSocket, fakeModel, setPageConfig } from "./fakes.js";

let el;
beforeEach(() => {
  FakeWebSocket.instances = [];
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => {
  el.remove();
  setPageConfig(null);
});

// -- the room's side of y-protocols, played by the test --------------------------------------
function syncFrame(write) {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, 0);
  write(e);
  return encoding.toUint8Array(e);
}
/** Apply every SYNC frame the widget sent to `doc`; return the decoded [type, step] list. */
function applyFrames(frames, doc, awareness) {
  const seen = [];
  for (const frame of frames) {
    if (typeof frame === "string") continue;
    const d = decoding.createDecoder(frame);
    const type = decoding.readVarUint(d);
    if (type === 0) {
      const reply = encoding.createEncoder();
      seen.push([0, syncProtocol.readSyncMessage(d, reply, doc, "widget")]);
    } else if (type === 1) {
      const update = decoding.readVarUint8Array(d);
      if (awareness) awarenessProtocol.applyAwarenessUpdate(awareness, update, "widget");
      seen.push([1]);
    }
  }
  return seen;
}

function setup(initial = {}) {
  setPageConfig({ baseUrl: "/", token: "t" });
  const model = fakeModel({ party: "notes", room: "r1", user: "", ...initial });
  const cleanup = createDocView({ WebSocket: FakeWebSocket }).render({ model, el });
  const socket = FakeWebSocket.last();
  return { model, cleanup, socket, textarea: el.querySelector("textarea") };
}

describe("doc view", () => {
  it("syncs on open: STEP1 and its awareness state; asks for the room's epoch", () => {
    const { model, socket } = setup({ user: "ana" });
    expect(new URL(socket.url).pathname).toBe("/parties/notes/r1");
    expect(new URL(socket.url).searchParams.get("epoch")).toBe("");
    socket.open();
    const server = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(server);
    expect(applyFrames(socket.sent, server, awareness)).toEqual([[0, 0], [1]]);
    const names = [...awareness.getStates().values()].map((s) => s.user && s.user.name);
    expect(names).toContain("ana");
    expect(model.get("status")).toBe("connected");
  });

  it("applies remote Y updates into the textarea and the map rows", () => {
    const { model, socket, textarea } = setup();
    socket.open();
    const server = new Y.Doc();
    server.getText("text").insert(0, "hello");
    server.getMap("map").set("count", 3);
    socket.receive(syncFrame((e) => syncProtocol.writeSyncStep2(e, server)));
    expect(textarea.value).toBe("hello");
    expect(el.querySelector(".map td").textContent).toBe("count");
    expect(el.querySelectorAll(".map td")[1].textContent).toBe("3");
    expect(model.get("synced")).toBe(true);
    expect(model.get("status")).toBe("synced");

    // a later incremental update, with the local caret kept in place
    textarea.focus();
    textarea.setSelectionRange(5, 5);
    const before = Y.encodeStateVector(server);
    server.getText("text").insert(0, ">> ");
    const update = Y.encodeStateAsUpdate(server, before);
    socket.receive(syncFrame((e) => syncProtocol.writeUpdate(e, update)));
    expect(textarea.value).toBe(">> hello");
    expect(textarea.selectionStart).toBe(8);
  });

  it("sends local edits as minimal Y updates", () => {
    const { socket, textarea } = setup();
    socket.open();
    const server = new Y.Doc();
    server.getText("text").insert(0, "hello world");
    socket.receive(syncFrame((e) => syncProtocol.writeSyncStep2(e, server)));
    applyFrames(socket.sent, server); // catch the server up with the widget's frames so far
    socket.sent.length = 0;

    const deltas = [];
    server.getText("text").observe((event) => deltas.push(event.delta));
    textarea.value = "hello brave world";
    textarea.dispatchEvent(new Event("input"));
    expect(socket.sent).toHaveLength(1);
    expect(applyFrames(socket.sent, server)).toEqual([[0, 2]]); // one UPDATE
    expect(server.getText("text").toString()).toBe("hello brave world");
    expect(deltas).toEqual([[{ retain: 6 }, { insert: "brave " }]]);
  });

  it("edits the map from the form and the delete buttons", () => {
    const { socket } = setup();
    socket.open();
    const server = new Y.Doc();
    socket.receive(syncFrame((e) => syncProtocol.writeSyncStep2(e, server)));
    el.querySelector(".key").value = "title";
    el.querySelector(".value").value = '{"a": 1}';
    el.querySelector("form.set").dispatchEvent(new Event("submit", { cancelable: true }));
    applyFrames(socket.sent, server);
    expect(server.getMap("map").get("title")).toEqual({ a: 1 });
    el.querySelector(".map button").click();
    applyFrames(socket.sent, server);
    expect(server.getMap("map").has("title")).toBe(false);
  });

  it("shows presence from awareness", () => {
    const { model, socket } = setup({ user: "ana" });
    socket.open();
    const other = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(other);
    awareness.setLocalState({ user: { name: "kernel" } });
    const update = awarenessProtocol.encodeAwarenessUpdate(awareness, [other.clientID]);
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, 1);
    encoding.writeVarUint8Array(e, update);
    socket.receive(encoding.toUint8Array(e));
    expect(el.querySelector(".presence").textContent).toBe("here: ana (you), kernel");
    expect(model.get("presence").map((p) => p.state.user.name).sort()).toEqual(["ana", "kernel"]);
    socket.serverClose(1006); // others' presence goes with the connection
    expect(el.querySelector(".presence").textContent).toBe("here: ana (you)");
  });

  it("starts afresh when the room's document was recreated (4409)", () => {
    vi.useFakeTimers();
    try {
      const { socket, textarea } = setup();
      socket.open();
      socket.receive('__YPS:{"epoch":"e1"}');
      const server = new Y.Doc();
      server.getText("text").insert(0, "old");
      socket.receive(syncFrame((e) => syncProtocol.writeSyncStep2(e, server)));
      expect(textarea.value).toBe("old");
      socket.serverClose(4409, "document recreated");
      expect(textarea.value).toBe("");
      vi.advanceTimersByTime(600);
      const again = FakeWebSocket.last();
      expect(again).not.toBe(socket);
      expect(new URL(again.url).searchParams.get("epoch")).toBe("");
    } finally {
      vi.useRealTimers();
    }
  });

  it("works through the kernel relay with binary buffers", () => {
    const model = fakeModel({ party: "notes", room: "r1", connection_id: "k1" });
    createDocView({ WebSocket: FakeWebSocket }).render({ model, el });
    expect(model.sent[0].content).toEqual({ type: "relay-open", id: "k1", query: { epoch: "" } });
    model.emit("msg:custom", { type: "open", id: "k1", url: "ws://k/parties/notes/r1" });
    const step1 = model.sent.find((m) => m.content.type === "send" && m.content.binary);
    expect(step1.buffers[0]).toBeInstanceOf(Uint8Array);
    const server = new Y.Doc();
    server.getText("text").insert(0, "relayed");
    const frame = syncFrame((e) => syncProtocol.writeSyncStep2(e, server));
    model.emit("msg:custom", { type: "message", binary: true }, [new DataView(frame.buffer)]);
    expect(el.querySelector("textarea").value).toBe("relayed");
  });
});

describe("text helpers", () => {
  it("applyTextDiff makes one minimal change", () => {
    const doc = new Y.Doc();
    const text = doc.getText("t");
    text.insert(0, "abcdef");
    const deltas = [];
    text.observe((e) => deltas.push(e.delta));
    applyTextDiff(text, "abXYef");
    expect(deltas).toEqual([[{ retain: 2 }, { delete: 2 }, { insert: "XY" }]]);
    applyTextDiff(text, "abXYef");
    expect(deltas).toHaveLength(1);
  });

  it("mapIndex moves a caret through inserts and deletes", () => {
    expect(mapIndex([{ insert: "xx" }], 3)).toBe(5);
    expect(mapIndex([{ retain: 5 }, { insert: "xx" }], 3)).toBe(3);
    expect(mapIndex([{ retain: 1 }, { delete: 5 }], 3)).toBe(1);
    expect(mapIndex([{ delete: 1 }], 3)).toBe(2);
  });
});
