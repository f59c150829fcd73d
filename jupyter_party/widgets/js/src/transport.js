// How a widget's front end reaches its room.
//
// Direct: in JupyterLab / Notebook 7 the page holds <script id="jupyter-config-data"> with
// baseUrl, wsUrl and token; the widget opens its own WebSocket to
// {wsUrl or ws(s)://origin}{baseUrl}parties/{party}/{room}, with ?token= when the page has a
// token (otherwise the same-origin login cookie authenticates). It is a real participant.
//
// Relay: where there is no jupyter-config-data (VS Code, Colab) the page cannot reach the
// server, so the widget asks its kernel to hold the connection and exchanges custom messages
// with it (see jupyter_party/widgets/_base.py for the Python half):
//   front end -> kernel  {type: "relay-open", id, query} | {type: "relay-query", query}
//                        {type: "send", data} | {type: "send", binary: true} + one buffer
//                        {type: "relay-close"}
//   kernel -> front end  {type: "open", id} | {type: "close", code, reason, final}
//                        {type: "message", data} | {type: "message", binary: true} + one buffer

import { CloseCode, REFUSALS } from "./codes.js";

/** The Jupyter page configuration, or null outside JupyterLab / Notebook 7. */
export function pageConfig(doc = globalThis.document) {
  const script = doc && doc.getElementById && doc.getElementById("jupyter-config-data");
  if (!script) return null;
  try {
    return JSON.parse(script.textContent);
  } catch {
    return null;
  }
}

function baseUrl(config) {
  const base = config.baseUrl || "/";
  return base.endsWith("/") ? base : base + "/";
}

/** The http(s) base URL of the Jupyter server the page came from. */
export function httpBase(config, location = globalThis.location) {
  return location.origin + baseUrl(config);
}

/** The WebSocket URL of a room (without query). */
export function roomUrl(config, party, room, location = globalThis.location) {
  const ws = config.wsUrl || location.origin.replace(/^http/, "ws");
  const prefix = ws.replace(/\/+$/, "") + baseUrl(config);
  return `${prefix}parties/${encodeURIComponent(party)}/${encodeURIComponent(room)}`;
}

export function randomId() {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID().replaceAll("-", "");
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}

class Emitter {
  constructor() {
    this.listeners = {};
  }
  on(event, callback) {
    (this.listeners[event] ||= []).push(callback);
    return () => this.off(event, callback);
  }
  off(event, callback) {
    const list = this.listeners[event] || [];
    const i = list.indexOf(callback);
    if (i >= 0) list.splice(i, 1);
  }
  emit(event, ...args) {
    for (const callback of [...(this.listeners[event] || [])]) {
      try {
        callback(...args);
      } catch (error) {
        console.error(`jupyter-party widget: ${event} listener failed`, error);
      }
    }
  }
}

/**
 * A reconnecting WebSocket with partysocket's semantics: the same id (`_pk`) on every
 * reconnect, exponential backoff, messages sent while offline are buffered.
 * Events: open, message(data: string | Uint8Array), close({code, reason, final}).
 */
export class DirectTransport extends Emitter {
  constructor({ url, id, token, query, WebSocket, minDelay = 500, maxDelay = 10000 }) {
    super();
    this.mode = "direct";
    this.url = url;
    this.id = id;
    this.token = token;
    this.query = query; // an object or a function returning one, re-evaluated per connect
    this.WebSocket = WebSocket;
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.retries = 0;
    /** @type {any} the page's Jupyter configuration (set by openTransport) */
    this.config = null;
    /** @type {string} the server's http(s) base URL (set by openTransport) */
    this.httpBase = "";
    this.outbox = [];
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    this.connect();
  }

  get connected() {
    return this.socket !== null && this.socket.readyState === 1;
  }

  connect() {
    if (this.stopped) return;
    const extra = typeof this.query === "function" ? this.query() : this.query;
    const params = new URLSearchParams({ ...(extra || {}), _pk: this.id });
    if (this.token) params.set("token", this.token);
    const socket = new this.WebSocket(`${this.url}?${params}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.retries = 0;
      this.emit("open");
      while (this.outbox.length && this.connected) socket.send(this.outbox.shift());
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
      this.emit("message", data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      const final = this.stopped || REFUSALS.includes(event.code);
      this.emit("close", { code: event.code, reason: event.reason || "", final });
      if (final) return;
      const delay = Math.min(this.maxDelay, this.minDelay * 2 ** this.retries++);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  /** Reconnect now (e.g. after the document was recreated). */
  reconnect() {
    if (this.socket) this.socket.close(CloseCode.NORMAL, "reconnect");
    else {
      clearTimeout(this.timer);
      this.connect();
    }
  }

  send(data) {
    if (this.stopped) return false;
    if (this.connected) this.socket.send(data);
    else this.outbox.push(data);
    return true;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(CloseCode.NORMAL, "widget closed");
    this.emit("close", { code: CloseCode.NORMAL, reason: "widget closed", final: true });
  }
}

/** The kernel holds the connection; see the protocol at the top of this file. */
export class RelayTransport extends Emitter {
  constructor({ model, id, query }) {
    super();
    this.mode = "relay";
    this.model = model;
    this.id = id;
    this.query = query;
    this.url = "";
    this.connected = false;
    this.stopped = false;
    this.onCustom = (msg, buffers) => this.receive(msg, buffers);
    model.on("msg:custom", this.onCustom);
    model.send({ type: "relay-open", id, query: this.currentQuery() });
  }

  currentQuery() {
    return (typeof this.query === "function" ? this.query() : this.query) || {};
  }

  receive(msg, buffers) {
    if (!msg || this.stopped) return;
    if (msg.type === "open") {
      this.connected = true;
      if (msg.url) this.url = msg.url;
      this.emit("open");
    } else if (msg.type === "message") {
      if (msg.binary) {
        const view = buffers && buffers[0];
        const bytes = view
          ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice()
          : new Uint8Array();
        this.emit("message", bytes);
      } else {
        this.emit("message", msg.data);
      }
    } else if (msg.type === "close") {
      this.connected = false;
      this.emit("close", { code: msg.code, reason: msg.reason || "", final: !!msg.final });
    }
  }

  reconnect() {
    this.model.send({ type: "relay-query", query: this.currentQuery(), reconnect: true });
  }

  send(data) {
    if (this.stopped) return false;
    if (typeof data === "string") this.model.send({ type: "send", data });
    else {
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
      this.model.send({ type: "send", binary: true }, undefined, [bytes]);
    }
    return true;
  }

  close() {
    if (this.stopped) return;
    this.stopped = true;
    this.model.off("msg:custom", this.onCustom);
    this.model.send({ type: "relay-close" });
  }
}

/**
 * Open the model's room: direct when the page has jupyter-config-data (and the model's mode
 * allows it), else through the kernel. `env` injects globals for tests:
 * {document, location, WebSocket, fetch}.
 * @param {any} model
 * @param {{id?: string, query?: any, env?: {document?: any, location?: any, WebSocket?: any, fetch?: any}}} [options]
 */
export function openTransport(model, { id, query, env = {} } = {}) {
  const doc = env.document || globalThis.document;
  const location = env.location || globalThis.location;
  const WebSocketImpl = env.WebSocket || globalThis.WebSocket;
  const mode = model.get("mode") || "auto";
  const config = mode === "relay" ? null : pageConfig(doc);
  if (config && WebSocketImpl) {
    const url = roomUrl(config, model.get("party"), model.get("room"), location);
    // `config.query`: fixed parameters of every connection (the share page's share_token).
    const fixed = config.query || {};
    const transport = new DirectTransport({
      url,
      id,
      token: config.token || "",
      query: typeof query === "function" ? () => ({ ...fixed, ...query() }) : { ...fixed, ...query },
      WebSocket: WebSocketImpl,
    });
    transport.config = config;
    transport.httpBase = httpBase(config, location);
    return transport;
  }
  return new RelayTransport({ model, id, query });
}

/**
 * One call of the admin API (`{base}party-api/{path}`) from a direct transport: the token, or
 * the login cookie (with its XSRF header, which Jupyter wants for anything but GET).
 * @param {any} transport
 * @param {string} path
 * @param {{method?: string, body?: any, env?: {fetch?: any, document?: any}}} [options]
 */
export function adminFetch(transport, path, { method = "GET", body, env = {} } = {}) {
  const fetchImpl = env.fetch || globalThis.fetch;
  const doc = env.document || globalThis.document;
  /** @type {Record<string, string>} */
  const headers = {};
  if (transport.token) headers.Authorization = `token ${transport.token}`;
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    const xsrf = /(?:^|;\s*)_xsrf=([^;]*)/.exec((doc && doc.cookie) || "");
    if (xsrf) headers["X-XSRFToken"] = decodeURIComponent(xsrf[1]); // cookie-authenticated pages
  }
  return fetchImpl(`${transport.httpBase}party-api/${path}`, {
    method,
    headers,
    credentials: "same-origin",
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** How many connections the room has, from the admin API (direct mode only), or null. */
export async function roomConnections(transport, party, room, fetchImpl = globalThis.fetch) {
  if (transport.mode !== "direct" || !fetchImpl) return null;
  try {
    const response = await adminFetch(transport, "rooms", { env: { fetch: fetchImpl } });
    if (!response.ok) return null;
    const body = await response.json();
    const entry = (body.rooms || []).find((r) => r.party === party && r.room === room);
    return entry ? entry.connections : 0;
  } catch {
    return null;
  }
}

/**
 * Ask the page's server for a share link of the room (direct mode). The browser sends its own
 * `Origin`, so the link is on the address this page was loaded from, proxies included.
 * Resolves to `{url, access, local}`; rejects with the server's message.
 */
export async function requestShare(transport, party, room, access, env = {}) {
  const body = { party, room, access };
  const response = await adminFetch(transport, "share", { method: "POST", body, env });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.message || `HTTP ${response.status}`);
  return { url: answer.url, access, local: !!answer.local };
}

/** Per-model sessions shared by every view of the model, closed with the last view. */
export function sharedSession(registry, model, create) {
  let entry = registry.get(model);
  if (!entry) {
    entry = { session: create(), views: 0 };
    registry.set(model, entry);
  }
  entry.views += 1;
  return {
    session: entry.session,
    release() {
      entry.views -= 1;
      if (entry.views === 0 && registry.get(model) === entry) {
        registry.delete(model);
        entry.session.close();
      }
    },
  };
}
