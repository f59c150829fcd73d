// Room console widget (anywidget module): connection status, own id, presence, live message
// log and a send box -- the notebook twin of the share page (web/templates/share.html).
//
// State lives in the model so every view (and the kernel) sees the same thing:
//   status, connection_id, connections (room size, -1 unknown), messages [{dir, text, time}],
//   share ({url, access, local} or {error}: the last share link asked for).
// In direct mode this module's per-model session writes them; in relay mode the kernel does.
// The message log is the exception: its entries travel as deltas, {type: "log", entries}, from
// whichever side holds the connection to the other (direct mode: at most one message to the
// kernel per FLUSH_MS), never as the whole log on every message; `messages` carries the whole
// log only when a page loads the widget or the kernel assigns it. Views render it bounded and
// incrementally, once per animation frame.
// A share link asked for in direct mode comes from the page's own server and address; in relay
// mode the kernel makes it ({type: "share", access} to the kernel).
import { openTransport, randomId, requestShare, roomConnections, sharedSession } from "./transport.js";
import { CloseCode } from "./codes.js";

export const MAX_MESSAGES = 200;
export const FLUSH_MS = 200; // direct mode: new log entries reach the kernel at most this often
const POLL_MS = 5000;

export const CSS = `
.jp-party-console { font: 13px/1.4 system-ui, sans-serif; border: 1px solid #d0d7de; border-radius: 6px; overflow: hidden; max-width: 900px; }
.jp-party-console header { padding: .4em .8em; background: #24292f; color: #fff; display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; }
.jp-party-console header h1 { font-size: 1em; margin: 0; color: #fff; }
.jp-party-console .status { margin-left: auto; font-size: .9em; }
.jp-party-console .status.connected { color: #7ee787; } .jp-party-console .status.closed { color: #ff7b72; }
.jp-party-console .presence { padding: .3em .8em; background: #f6f8fa; color: #57606a; font-size: .9em; border-bottom: 1px solid #d0d7de; }
.jp-party-console .log { height: 14em; overflow: auto; margin: 0; padding: .4em .8em; font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; }
.jp-party-console .log .in { color: #0550ae; } .jp-party-console .log .out { color: #116329; } .jp-party-console .log .info { color: #6e7781; }
.jp-party-console form { display: flex; gap: .5em; padding: .4em .8em; border-top: 1px solid #d0d7de; margin: 0; }
.jp-party-console input { flex: 1; font: inherit; padding: .2em .4em; }
.jp-party-console .share { display: flex; gap: .5em; align-items: baseline; flex-wrap: wrap; padding: .3em .8em; border-top: 1px solid #d0d7de; font-size: .9em; }
.jp-party-console .share a { word-break: break-all; } .jp-party-console .share .note { color: #9a6700; }
`;

function describe(data) {
  return typeof data === "string" ? data : `<${data.byteLength} bytes of binary data>`;
}

/**
 * A model's message log on this page, shared by its views: the last MAX_MESSAGES entries.
 * `watch(view)` calls `view(entries, reset)` with each batch appended, or with the whole log
 * (`reset`) when the kernel sends it; `add` (direct mode: this page holds the connection) also
 * queues the entry for the kernel, which gets every entry queued in one message per FLUSH_MS.
 */
export function createLog(model) {
  let entries = (model.get("messages") || []).slice(-MAX_MESSAGES);
  let queued = [];
  let timer = null;
  const views = new Set();
  const emit = (batch, reset) => {
    for (const view of views) view(batch, reset);
  };
  const flush = () => {
    timer = null;
    if (queued.length) model.send({ type: "log", entries: queued });
    queued = [];
  };
  const append = (batch) => {
    entries.push(...batch);
    if (entries.length > MAX_MESSAGES) entries.splice(0, entries.length - MAX_MESSAGES);
    emit(batch, false);
  };
  const onReset = () => {
    entries = (model.get("messages") || []).slice(-MAX_MESSAGES);
    emit(entries, true);
  };
  const onCustom = (msg) => {
    if (msg && msg.type === "log" && Array.isArray(msg.entries)) append(msg.entries);
  };
  model.on("change:messages", onReset);
  model.on("msg:custom", onCustom);
  return {
    entries: () => entries,
    watch(view) {
      views.add(view);
      return () => views.delete(view);
    },
    add(dir, text) {
      const entry = { dir, text, time: Date.now() };
      append([entry]);
      queued.push(entry);
      if (queued.length > MAX_MESSAGES) queued.splice(0, queued.length - MAX_MESSAGES);
      timer ??= setTimeout(flush, FLUSH_MS);
    },
    close() {
      clearTimeout(timer);
      flush();
      model.off("change:messages", onReset);
      model.off("msg:custom", onCustom);
    },
  };
}

function setState(model, state) {
  for (const [key, value] of Object.entries(state)) model.set(key, value);
  model.save_changes();
}

/** The per-model connection (direct mode writes the model's state; relay: the kernel does). */
function createSession(model, env) {
  const id = model.get("connection_id") || randomId();
  const transport = openTransport(model, { id, env });
  const direct = transport.mode === "direct";
  const party = model.get("party");
  const room = model.get("room");
  const log = createLog(model);
  let poll = null;
  const refresh = async () => {
    const count = await roomConnections(transport, party, room, env.fetch || globalThis.fetch);
    if (count !== null && count !== model.get("connections")) setState(model, { connections: count });
  };
  if (direct) {
    setState(model, { connection_id: id, status: "connecting", mode_used: "direct" });
    transport.on("open", () => {
      setState(model, { status: "connected" });
      log.add("info", "connected");
      clearInterval(poll);
      setTimeout(refresh, 300); // let the server finish accepting us before counting
      poll = setInterval(refresh, POLL_MS);
    });
    transport.on("message", (data) => log.add("in", describe(data)));
    transport.on("close", ({ code, reason, final }) => {
      clearInterval(poll);
      if (code === CloseCode.NORMAL && reason === "widget closed") return;
      setState(model, { status: `closed (${code}${reason ? ": " + reason : ""})${final ? "" : ", reconnecting"}` });
      log.add("info", `closed ${code} ${reason}`);
    });
  }
  return {
    transport,
    log,
    send(text) {
      if (!transport.send(text)) return;
      if (direct) log.add("out", text); // the kernel logs relayed messages itself
    },
    async share(access) {
      if (!direct) {
        model.send({ type: "share", access });
        return;
      }
      try {
        setState(model, { share: await requestShare(transport, party, room, access, env) });
      } catch (error) {
        setState(model, { share: { error: `no share link: ${error.message || error}` } });
      }
    },
    close() {
      clearInterval(poll);
      transport.close();
      log.close();
    },
  };
}

/** Copy `text` to the clipboard; the button says whether it worked. */
async function copyText(text, button, env) {
  const clipboard = env.clipboard || (globalThis.navigator && globalThis.navigator.clipboard);
  try {
    await clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed: select the link";
  }
}

/**
 * The anywidget module; `env` injects {document, location, WebSocket, fetch, clipboard,
 * requestAnimationFrame} for tests.
 */
export function createConsole(env = {}) {
  const sessions = new WeakMap();
  const nextFrame =
    env.requestAnimationFrame ||
    ((f) => (globalThis.requestAnimationFrame ? globalThis.requestAnimationFrame(f) : setTimeout(f, 16)));
  return {
    render({ model, el }) {
      const { session, release } = sharedSession(sessions, model, () => createSession(model, env));
      const root = document.createElement("div");
      root.className = "jp-party-console";
      root.innerHTML = `<style>${CSS}</style>
<header><h1 class="title"></h1><span class="who"></span><span class="status">connecting…</span></header>
<div class="presence"></div>
<pre class="log" aria-live="polite"></pre>
<form><input class="message" autocomplete="off" placeholder="Message (text, or JSON)" aria-label="Message"><button>Send</button></form>
<div class="share"><button class="share-write" type="button">Share link</button><button class="share-read" type="button">Read-only link</button><span class="link"></span></div>`;
      el.append(root);
      const $ = (selector) => root.querySelector(selector);
      const log = $(".log");

      const renderHeader = () => {
        $(".title").textContent = `${model.get("party")} / ${model.get("room")}`;
        const id = model.get("connection_id") || "";
        $(".who").textContent = id ? `you: ${id.slice(0, 8)}` : "";
        $(".who").title = id;
        const status = model.get("status") || "connecting…";
        $(".status").textContent = status;
        $(".status").className = `status ${status.startsWith("connected") ? "connected" : status.startsWith("closed") ? "closed" : ""}`;
        const count = model.get("connections");
        const mode = session.transport.mode === "relay" ? " · via the kernel" : "";
        $(".presence").textContent =
          `here: you (${id.slice(0, 8) || "?"})` +
          (count >= 0 ? ` · ${count} connection${count === 1 ? "" : "s"} in the room` : "") + mode;
      };
      // The log's DOM changes once per animation frame, whatever the message rate: the
      // entries appended since the last frame (at most MAX_MESSAGES), or all of them after a
      // reset; the oldest lines go, so the list never holds more than MAX_MESSAGES.
      let pending = [];
      let resetPending = true;
      let scheduled = false;
      const line = ({ dir, text, time }) => {
        const div = document.createElement("div");
        div.className = dir;
        const arrow = dir === "in" ? "←" : dir === "out" ? "→" : "·";
        div.textContent = `${new Date(time).toLocaleTimeString()} ${arrow} ${text}`;
        return div;
      };
      const paint = () => {
        scheduled = false;
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        if (resetPending) log.replaceChildren(...session.log.entries().map(line));
        else log.append(...pending.map(line));
        for (let extra = log.childElementCount - MAX_MESSAGES; extra > 0; extra--) log.firstElementChild.remove();
        pending = [];
        resetPending = false;
        if (atBottom) log.scrollTop = log.scrollHeight;
      };
      const renderLog = (batch, reset) => {
        if (reset) resetPending = true;
        else if (!resetPending) {
          pending.push(...batch);
          if (pending.length > MAX_MESSAGES) pending.splice(0, pending.length - MAX_MESSAGES);
        }
        if (!scheduled) {
          scheduled = true;
          nextFrame(paint);
        }
      };
      const renderShare = () => {
        const share = model.get("share") || {};
        const parts = [];
        if (share.url) {
          const link = document.createElement("a");
          Object.assign(link, { href: share.url, target: "_blank", rel: "noopener noreferrer" });
          link.textContent = share.url;
          const copy = document.createElement("button");
          Object.assign(copy, { type: "button", className: "copy", textContent: "Copy" });
          copy.addEventListener("click", () => copyText(share.url, copy, env));
          parts.push(`${share.access === "read" ? "read-only" : "write"} link: `, link, copy);
          if (share.local) {
            const note = document.createElement("span");
            note.className = "note";
            note.textContent = "only this machine can open it: set PartyApp.public_url";
            parts.push(note);
          }
        } else if (share.error) {
          parts.push(share.error);
        }
        $(".link").replaceChildren(...parts);
      };
      const events = ["change:status", "change:connection_id", "change:connections", "change:party", "change:room"];
      for (const event of events) model.on(event, renderHeader);
      const unwatch = session.log.watch(renderLog);
      model.on("change:share", renderShare);
      renderHeader();
      paint();
      renderShare();
      $(".share-write").addEventListener("click", () => session.share("write"));
      $(".share-read").addEventListener("click", () => session.share("read"));

      $("form").addEventListener("submit", (event) => {
        event.preventDefault();
        const input = $(".message");
        if (!input.value) return;
        session.send(input.value);
        input.value = "";
      });

      return () => {
        for (const event of events) model.off(event, renderHeader);
        unwatch();
        model.off("change:share", renderShare);
        release();
      };
    },
  };
}

export default createConsole();
