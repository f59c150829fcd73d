// Shared-document widget (anywidget module) for YServer rooms: syncs a Y.Doc with the room
// over y-protocols sync + awareness, shows the Map "map" as key/value rows and the Text "text"
// in an editable textarea (local edits become minimal Y.Text diffs), and who is here from
// awareness. Model state written here: status, connection_id, synced, presence.
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import { openTransport, randomId, sharedSession } from "./transport.js";
import { CloseCode } from "./codes.js";

const SYNC = 0, AWARENESS = 1, QUERY_AWARENESS = 3;
const CUSTOM_PREFIX = "__YPS:";

export const CSS = `
.jp-party-doc { font: 13px/1.4 system-ui, sans-serif; border: 1px solid #d0d7de; border-radius: 6px; overflow: hidden; max-width: 900px; }
.jp-party-doc header { padding: .4em .8em; background: #24292f; color: #fff; display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; }
.jp-party-doc header h1 { font-size: 1em; margin: 0; color: #fff; }
.jp-party-doc .status { margin-left: auto; font-size: .9em; }
.jp-party-doc .status.connected { color: #7ee787; } .jp-party-doc .status.closed { color: #ff7b72; }
.jp-party-doc .presence { padding: .3em .8em; background: #f6f8fa; color: #57606a; font-size: .9em; border-bottom: 1px solid #d0d7de; }
.jp-party-doc section { padding: .4em .8em; }
.jp-party-doc h2 { font-size: .9em; margin: .2em 0; color: #57606a; }
.jp-party-doc table { border-collapse: collapse; font: 12px ui-monospace, monospace; }
.jp-party-doc td { border-bottom: 1px solid #eaeef2; padding: .1em .6em .1em 0; vertical-align: top; }
.jp-party-doc textarea { width: 100%; box-sizing: border-box; min-height: 8em; font: 12px/1.4 ui-monospace, monospace; }
.jp-party-doc form { display: flex; gap: .4em; margin: .3em 0 0; }
`;

function frame(type, write) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, type);
  write(encoder);
  return encoding.toUint8Array(encoder);
}

function setState(model, state) {
  for (const [key, value] of Object.entries(state)) model.set(key, value);
  model.save_changes();
}

/** A Y.Doc + Awareness kept in sync with the room; shared by every view of the model. */
export class DocSession {
  constructor(model, env = {}) {
    this.model = model;
    this.listeners = new Set();
    this.epoch = "";
    this.synced = false;
    this.newDoc();
    const id = model.get("connection_id") || randomId();
    this.transport = openTransport(model, { id, env, query: () => ({ epoch: this.epoch }) });
    setState(model, { connection_id: id, status: "connecting", synced: false });
    this.transport.on("open", () => this.onOpen());
    this.transport.on("message", (data) => this.onMessage(data));
    this.transport.on("close", (event) => this.onClose(event));
    this.publishPresence();
  }

  newDoc() {
    if (this.doc) {
      this.awareness.destroy();
      this.doc.destroy();
    }
    this.doc = new Y.Doc();
    this.awareness = new awarenessProtocol.Awareness(this.doc);
    const name = this.model.get("user") || `notebook-${this.doc.clientID}`;
    this.awareness.setLocalState({ user: { name } });
    this.doc.on("update", (update, origin) => {
      // Only while connected: after a reconnect the sync exchange carries offline edits, and
      // a recreated document (4409) must never receive updates of the old one.
      if (origin !== this && this.transport && this.transport.connected) {
        this.transport.send(frame(SYNC, (e) => syncProtocol.writeUpdate(e, update)));
      }
    });
    this.awareness.on("update", ({ added, updated, removed }, origin) => {
      const changed = [...added, ...updated, ...removed];
      if (origin !== this && this.transport && this.transport.connected) {
        const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed);
        this.transport.send(frame(AWARENESS, (e) => encoding.writeVarUint8Array(e, update)));
      }
    });
    this.awareness.on("change", () => this.publishPresence());
  }

  publishPresence() {
    const presence = [...this.awareness.getStates()].map(([client, state]) => ({
      client,
      state,
      self: client === this.doc.clientID,
    }));
    setState(this.model, { presence });
    this.notify("presence");
  }

  onOpen() {
    setState(this.model, { status: "connected" });
    this.transport.send(frame(SYNC, (e) => syncProtocol.writeSyncStep1(e, this.doc)));
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID]);
    this.transport.send(frame(AWARENESS, (e) => encoding.writeVarUint8Array(e, update)));
  }

  onMessage(data) {
    if (typeof data === "string") {
      if (data.startsWith(CUSTOM_PREFIX)) {
        try {
          const body = JSON.parse(data.slice(CUSTOM_PREFIX.length));
          if (body && typeof body.epoch === "string") this.epoch = body.epoch;
        } catch {
          /* not ours */
        }
      }
      return;
    }
    const decoder = decoding.createDecoder(data);
    const type = decoding.readVarUint(decoder);
    if (type === SYNC) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, SYNC);
      const step = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
      if (encoding.length(encoder) > 1) this.transport.send(encoding.toUint8Array(encoder));
      if (step === syncProtocol.messageYjsSyncStep2 && !this.synced) {
        this.synced = true;
        setState(this.model, { status: "synced", synced: true });
      }
    } else if (type === AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), this);
    } else if (type === QUERY_AWARENESS) {
      const clients = [...this.awareness.getStates().keys()];
      const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients);
      this.transport.send(frame(AWARENESS, (e) => encoding.writeVarUint8Array(e, update)));
    }
  }

  onClose({ code, reason, final }) {
    this.synced = false;
    const others = [...this.awareness.getStates().keys()].filter((c) => c !== this.doc.clientID);
    awarenessProtocol.removeAwarenessStates(this.awareness, others, this);
    if (code === CloseCode.NORMAL && reason === "widget closed") return;
    if (code === CloseCode.EPOCH_CHANGED) {
      // The room's document was recreated: never merge old state into it. Start afresh.
      this.epoch = "";
      this.newDoc();
      this.notify("reset");
      setState(this.model, { status: "document recreated, reloading", synced: false });
      return;
    }
    const status = `closed (${code}${reason ? ": " + reason : ""})${final ? "" : ", reconnecting"}`;
    setState(this.model, { status, synced: false });
  }

  on(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  notify(event) {
    for (const callback of [...this.listeners]) callback(event);
  }

  close() {
    this.transport.close();
    this.awareness.destroy();
    this.doc.destroy();
  }
}

/** Replace `ytext`'s content with `value` by one minimal delete + insert (common ends kept). */
export function applyTextDiff(ytext, value, origin) {
  const old = ytext.toString();
  let start = 0;
  while (start < old.length && start < value.length && old[start] === value[start]) start++;
  let end = 0;
  while (
    end < old.length - start &&
    end < value.length - start &&
    old[old.length - 1 - end] === value[value.length - 1 - end]
  ) end++;
  const removed = old.length - start - end;
  const inserted = value.slice(start, value.length - end);
  if (!removed && !inserted) return;
  ytext.doc.transact(() => {
    if (removed) ytext.delete(start, removed);
    if (inserted) ytext.insert(start, inserted);
  }, origin);
}

/** Where a caret at `index` moves to after a Y.Text delta. */
export function mapIndex(delta, index) {
  let pos = 0;
  for (const op of delta) {
    if (op.retain) pos += op.retain;
    else if (op.insert) {
      const n = typeof op.insert === "string" ? op.insert.length : 1;
      if (pos < index) index += n;
      pos += n;
    } else if (op.delete) {
      if (pos < index) index = pos + Math.max(0, index - pos - op.delete);
    }
  }
  return index;
}

function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The anywidget module; `env` injects {document, location, WebSocket} for tests. */
export function createDocView(env = {}) {
  const sessions = new WeakMap();
  return {
    render({ model, el }) {
      const { session, release } = sharedSession(sessions, model, () => new DocSession(model, env));
      const root = document.createElement("div");
      root.className = "jp-party-doc";
      root.innerHTML = `<style>${CSS}</style>
<header><h1 class="title"></h1><span class="who"></span><span class="status">connecting…</span></header>
<div class="presence"></div>
<section><h2>map</h2><table class="map"><tbody></tbody></table>
<form class="set"><input class="key" placeholder="key" aria-label="key"><input class="value" placeholder="value (JSON or text)" aria-label="value"><button>Set</button></form></section>
<section><h2>text</h2><textarea class="text" spellcheck="false" aria-label="shared text"></textarea></section>`;
      el.append(root);
      const $ = (selector) => root.querySelector(selector);
      const textarea = $(".text");
      const origin = {}; // this view's edits

      const renderHeader = () => {
        $(".title").textContent = `${model.get("party")} / ${model.get("room")}`;
        const id = model.get("connection_id") || "";
        $(".who").textContent = id ? `you: ${id.slice(0, 8)}` : "";
        const status = model.get("status") || "connecting…";
        $(".status").textContent = status;
        $(".status").className = `status ${/^(connected|synced)/.test(status) ? "connected" : status.startsWith("closed") ? "closed" : ""}`;
      };
      const renderPresence = () => {
        const names = [...session.awareness.getStates()].map(([client, state]) => {
          const name = (state && state.user && state.user.name) || String(client);
          return client === session.doc.clientID ? `${name} (you)` : name;
        });
        const mode = session.transport.mode === "relay" ? " · via the kernel" : "";
        $(".presence").textContent = `here: ${names.join(", ") || "nobody"}${mode}`;
      };

      let ytext = null, ymap = null;
      const renderMap = () => {
        const rows = [...ymap.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        $(".map tbody").replaceChildren(
          ...rows.map(([key, value]) => {
            const tr = document.createElement("tr");
            const k = document.createElement("td");
            const v = document.createElement("td");
            const d = document.createElement("td");
            k.textContent = key;
            v.textContent = value instanceof Y.AbstractType ? `<${value.constructor.name}>` : JSON.stringify(value);
            const button = document.createElement("button");
            button.textContent = "×";
            button.title = `delete ${key}`;
            button.addEventListener("click", () => ymap.delete(key));
            d.append(button);
            tr.append(k, v, d);
            return tr;
          }),
        );
      };
      const onText = (event, transaction) => {
        if (transaction.origin === origin) return;
        const focused = root.ownerDocument.activeElement === textarea;
        const start = mapIndex(event.delta, textarea.selectionStart);
        const end = mapIndex(event.delta, textarea.selectionEnd);
        textarea.value = ytext.toString();
        if (focused) textarea.setSelectionRange(start, end);
      };
      const bind = () => {
        if (ytext) ytext.unobserve(onText);
        if (ymap) ymap.unobserve(renderMap);
        ytext = session.doc.getText("text");
        ymap = session.doc.getMap("map");
        ytext.observe(onText);
        ymap.observe(renderMap);
        textarea.value = ytext.toString();
        renderMap();
        renderPresence();
      };
      bind();
      textarea.addEventListener("input", () => applyTextDiff(ytext, textarea.value, origin));
      $(".set").addEventListener("submit", (event) => {
        event.preventDefault();
        const key = $(".key").value;
        if (!key) return;
        ymap.set(key, parseValue($(".value").value));
        $(".value").value = "";
      });
      const unlisten = session.on((event) => (event === "reset" ? bind() : renderPresence()));
      const events = ["change:status", "change:connection_id", "change:party", "change:room"];
      for (const event of events) model.on(event, renderHeader);
      renderHeader();

      return () => {
        for (const event of events) model.off(event, renderHeader);
        unlisten();
        ytext.unobserve(onText);
        ymap.unobserve(renderMap);
        release();
      };
    },
  };
}

export default createDocView();
