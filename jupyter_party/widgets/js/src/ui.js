// A party's own UI (anywidget module): loads the party's ESM source (model "ui_esm") and calls
// its anywidget contract with one addition, a `room` handle on the room's connection:
//
//   export default {
//     render({ model, el, room }) {
//       room.on("message", (data) => ...);   // string, or Uint8Array for binary frames; the
//                                            // first listener also gets what came earlier
//       room.send("hello");                   // buffered while offline
//       // room.id, room.url, room.mode ("direct" | "relay"), room.connected,
//       // room.on("open" | "close", ...) -> returns an unsubscribe function
//       // model.get("party"), model.get("room"), model.get("url")
//     },
//   };
//
// The connection is direct from the page in JupyterLab / Notebook 7, else relayed by the kernel.
import { openTransport, randomId, sharedSession } from "./transport.js";
import { CloseCode } from "./codes.js";

function setState(model, state) {
  for (const [key, value] of Object.entries(state)) model.set(key, value);
  model.save_changes();
}

/** Import an ES module from source text (a Blob URL in browsers, a data: URL elsewhere). */
export async function importSource(source) {
  if (globalThis.Blob && globalThis.URL && URL.createObjectURL && !globalThis.process) {
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    try {
      return await import(/* webpackIgnore: true */ /* @vite-ignore */ url);
    } finally {
      URL.revokeObjectURL(url);
    }
  }
  const url = "data:text/javascript;charset=utf-8," + encodeURIComponent(source);
  return import(/* @vite-ignore */ url);
}

function createSession(model, env) {
  const id = model.get("connection_id") || randomId();
  const transport = openTransport(model, { id, env });
  setState(model, { connection_id: id, status: "connecting" });
  transport.on("open", () => setState(model, { status: "connected" }));
  transport.on("close", ({ code, reason, final }) => {
    if (code === CloseCode.NORMAL && reason === "widget closed") return;
    setState(model, { status: `closed (${code}${reason ? ": " + reason : ""})${final ? "" : ", reconnecting"}` });
  });
  // The room's first messages (what `on_connect` sends) may arrive while the party's module
  // is still loading: they are kept for the first "message" listener, until render returns.
  let early = [];
  const keepEarly = transport.on("message", (data) => early?.push(data));
  const stopKeeping = () => {
    keepEarly();
    const kept = early;
    early = null;
    return kept || [];
  };
  const room = {
    id,
    get url() {
      return transport.url;
    },
    mode: transport.mode,
    get connected() {
      return transport.connected;
    },
    send: (data) => transport.send(data),
    on(event, callback) {
      const off = transport.on(event, callback);
      if (event === "message" && early) {
        const kept = stopKeeping();
        queueMicrotask(() => kept.forEach((data) => callback(data)));
      }
      return off;
    },
    off: (event, callback) => transport.off(event, callback),
  };
  return { transport, room, module: null, stopKeeping, close: () => transport.close() };
}

/** The anywidget module; `env` injects {document, location, WebSocket, importModule}. */
export function createPartyUI(env = {}) {
  const sessions = new WeakMap();
  return {
    async render({ model, el, experimental }) {
      const { session, release } = sharedSession(sessions, model, () => createSession(model, env));
      model.set("url", session.transport.url); // local to the page: where the room is
      try {
        if (!session.module) {
          const load = env.importModule || importSource;
          const loaded = await load(model.get("ui_esm"));
          let widget = loaded.default ?? loaded;
          if (typeof widget === "function") widget = await widget();
          session.module = widget;
          if (widget.initialize) await widget.initialize({ model, experimental, room: session.room });
        }
        const cleanup = session.module.render
          ? await session.module.render({ model, el, experimental, room: session.room })
          : undefined;
        session.stopKeeping(); // a UI that never listens keeps nothing
        return async () => {
          if (typeof cleanup === "function") await cleanup();
          release();
        };
      } catch (error) {
        session.stopKeeping();
        const pre = document.createElement("pre");
        pre.style.color = "#cf222e";
        pre.textContent = `${model.get("party")}: its UI module failed: ${error && error.stack ? error.stack : error}`;
        el.append(pre);
        return release;
      }
    },
  };
}

export default createPartyUI();
