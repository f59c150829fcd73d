// A Yjs client for tests/test_interop.py: one provider, driven by JSON commands.
//
//   node client.mjs '<config json>'
//
// config: {provider: "ypartykit" | "yprovider" | "ywebsocket", host: "localhost:8888",
//          basePath: "/a%40b/parties/ydoc", room: "r1", token: "...", params: {...},
//          actions: [...], interactive: false, timeout: 15000}
//
// The client connects, waits until synced, runs `actions` in order, then (if `interactive`)
// reads more actions from stdin, one JSON object a line, until stdin closes. Every action
// answers with exactly one JSON line on stdout, {"ok": <id>, ...} or {"error": ..., "ok": null}
// (then exit status 1); unsolicited events are lines with an "event" key. At the end it
// prints {"final": <state>} and exits 0.
//
// Actions (one key selects the action; "id" is echoed back, default = its index):
//   {"insert": "text", "value": "abc", "index"?: n}   insert into Text (appends by default)
//   {"set": "key", "value": <json>}                   set an entry of Map "map"
//   {"awareness": {...} | null}                       set (or clear) the local awareness state
//   {"custom": "msg"}                                 y-partyserver custom message (yprovider)
//   {"big": n}                                        append n ASCII bytes to Text "text"
//   {"waitText": "s", "mode"?: "equals"|"contains"}   wait until Text "text" matches
//   {"waitTextLength": n}                             wait until Text "text" has length n
//   {"waitMap": {...}}                                wait until Map "map" holds these entries
//   {"waitAwareness": n, "names"?: [...]}             wait until exactly n remote states
//                                                     (and their "name" fields, if given)
//   {"waitCustom": "echo:msg"}                        wait until that custom message arrived
//   {"state": true}                                   answer with the current state
//   {"disconnect": true}                              provider.disconnect()
//   {"exit": true}                                    stop reading; print final state; exit
// Every wait fails after `timeout` ms (per action: "timeout" key, default config.timeout).

import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import YPartyKitProvider from "y-partykit/provider";
import YProvider from "y-partyserver/provider";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";

const config = JSON.parse(process.argv[2] ?? "{}");
const TIMEOUT = config.timeout ?? 15000;
const POLL = 10;

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function fail(message, id = null) {
  emit({ ok: null, id, error: message });
  process.stdout.write("", () => process.exit(1));
}

function connect() {
  const params = { ...(config.params ?? {}) };
  if (config.token) params.token = config.token;
  const doc = new Y.Doc();
  const base = config.basePath.replace(/\/+$/, "");
  const common = { params, WebSocketPolyfill: WebSocket, disableBc: true };
  let provider;
  switch (config.provider) {
    case "ypartykit":
      provider = new YPartyKitProvider(config.host, config.room, doc, {
        ...common,
        prefix: `${base}/${config.room}`,
      });
      break;
    case "yprovider":
      provider = new YProvider(config.host, config.room, doc, {
        ...common,
        prefix: `${base}/${config.room}`,
      });
      break;
    case "ywebsocket":
      provider = new WebsocketProvider(`ws://${config.host}${base}`, config.room, doc, common);
      break;
    default:
      throw new Error(`unknown provider ${config.provider}`);
  }
  return { doc, provider };
}

const { doc, provider } = connect();
const text = doc.getText("text");
const map = doc.getMap("map");
const customs = [];

provider.on("status", (event) => emit({ event: "status", status: event.status }));
provider.on("connection-error", () => emit({ event: "connection-error" }));
provider.on("connection-close", (event) =>
  emit({ event: "connection-close", code: event?.code ?? null }),
);
if (config.provider === "yprovider") {
  provider.on("custom-message", (message) => {
    customs.push(message);
    emit({ event: "custom", message });
  });
}

function remoteStates() {
  const states = [];
  for (const [clientID, state] of provider.awareness.getStates()) {
    if (clientID !== doc.clientID) states.push(state);
  }
  return states;
}

function state() {
  const value = text.toString();
  return {
    clientID: doc.clientID,
    synced: provider.synced,
    text: value.length <= 10000 ? value : null,
    textLength: value.length,
    textSha256: createHash("sha256").update(value).digest("hex"),
    map: map.toJSON(),
    awareness: remoteStates(),
    custom: customs,
  };
}

function waitFor(predicate, what, timeout) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeout;
    const check = () => {
      let done = false;
      try {
        done = predicate();
      } catch (error) {
        reject(error);
        return;
      }
      if (done) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out after ${timeout} ms waiting for ${what}`));
      else setTimeout(check, POLL);
    };
    check();
  });
}

function isSubset(expected, actual) {
  return Object.entries(expected).every(
    ([key, value]) => JSON.stringify(actual[key]) === JSON.stringify(value),
  );
}

// Deterministic filler for {"big": n}: the test recomputes its hash.
function filler(n) {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return alphabet.repeat(Math.ceil(n / alphabet.length)).slice(0, n);
}

let running = true;

async function run(action, id) {
  const timeout = action.timeout ?? TIMEOUT;
  if ("insert" in action) {
    const ytext = doc.getText(action.insert);
    ytext.insert(action.index ?? ytext.length, action.value);
  } else if ("set" in action) {
    map.set(action.set, action.value);
  } else if ("awareness" in action) {
    provider.awareness.setLocalState(action.awareness);
  } else if ("custom" in action) {
    if (typeof provider.sendMessage !== "function") throw new Error("custom needs yprovider");
    provider.sendMessage(action.custom);
  } else if ("big" in action) {
    text.insert(text.length, filler(action.big));
  } else if ("waitText" in action) {
    const mode = action.mode ?? "equals";
    await waitFor(
      () =>
        mode === "equals"
          ? text.toString() === action.waitText
          : text.toString().includes(action.waitText),
      `text ${mode} ${JSON.stringify(action.waitText)} (have ${JSON.stringify(text.toString().slice(0, 200))})`,
      timeout,
    );
  } else if ("waitTextLength" in action) {
    await waitFor(
      () => text.length === action.waitTextLength,
      `text length ${action.waitTextLength} (have ${text.length})`,
      timeout,
    );
  } else if ("waitMap" in action) {
    await waitFor(
      () => isSubset(action.waitMap, map.toJSON()),
      `map ${JSON.stringify(action.waitMap)} (have ${JSON.stringify(map.toJSON())})`,
      timeout,
    );
  } else if ("waitAwareness" in action) {
    const names = action.names ? [...action.names].sort() : null;
    await waitFor(
      () => {
        const states = remoteStates();
        if (states.length !== action.waitAwareness) return false;
        if (!names) return true;
        const have = states.map((s) => s?.name).sort();
        return JSON.stringify(have) === JSON.stringify(names);
      },
      `${action.waitAwareness} remote awareness states ${names ? JSON.stringify(names) : ""}`,
      timeout,
    ).catch((error) => {
      throw new Error(`${error.message} (have ${JSON.stringify(remoteStates())})`);
    });
  } else if ("waitCustom" in action) {
    await waitFor(
      () => customs.includes(action.waitCustom),
      `custom message ${JSON.stringify(action.waitCustom)} (have ${JSON.stringify(customs)})`,
      timeout,
    );
  } else if ("state" in action) {
    // answered below
  } else if ("disconnect" in action) {
    provider.disconnect();
  } else if ("exit" in action) {
    running = false;
  } else {
    throw new Error(`unknown action ${JSON.stringify(action)}`);
  }
  emit({ ok: id, ...state() });
}

async function finish() {
  provider.destroy();
  // Let the close handshake go out before exiting.
  await waitFor(() => provider.ws === null, "socket close", 2000).catch(() => {});
  emit({ final: state() });
  process.stdout.write("", () => process.exit(0));
}

async function main() {
  await waitFor(() => provider.synced, "sync with the server", TIMEOUT);
  emit({ event: "synced", synced: true });
  const actions = config.actions ?? [];
  for (let i = 0; i < actions.length && running; i++) {
    await run(actions[i], actions[i].id ?? i);
  }
  if (config.interactive && running) {
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    let n = actions.length;
    for await (const line of lines) {
      if (!line.trim()) continue;
      const action = JSON.parse(line);
      await run(action, action.id ?? n++);
      if (!running) break;
    }
  }
  await finish();
}

main().catch((error) => fail(error.message));
