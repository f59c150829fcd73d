// PartyKit's own client, `partysocket`, for tests/test_partysocket.py: one PartySocket, driven
// by a script of actions.
//
//   node partysocket.mjs '<config json>'
//
// config: {options: {...}, fetch?: {...}, actions: [...], timeout: 15000}. `options` go to
// `new PartySocket(options)` as they are (host, party, room, prefix or basePath, id, query).
// Each action prints one JSON line, {"ok": <index>, ...}, as soon as it is done, so the test
// can act on the server in between; a failure prints {"error": ...} and exits 1.
//
//   {"recv": "type"}        wait for the next JSON message of that "type"; {"message": {...}}
//   {"send": <json>}        send it as JSON text
//   {"reconnect": true}     socket.reconnect(): close, then connect again with the same id
//   {"fetch": {...}, "init"?: {...}}   PartySocket.fetch(options + this, init) (`query` adds
//                           to the options' query);
//                           {"status": n, "body": <json or text>}
//   {"id": true}            {"id": socket.id, "roomUrl": socket.roomUrl}
//   {"hold": true}          stay connected until stdin closes

import { PartySocket } from "partysocket";
import WebSocket from "ws";

const config = JSON.parse(process.argv[2] ?? "{}");
const TIMEOUT = config.timeout ?? 15000;

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

const received = [];
let wake = () => {};
const socket = new PartySocket({ ...config.options, WebSocket, maxRetries: 20 });
socket.addEventListener("message", (event) => {
  received.push(JSON.parse(event.data));
  wake();
});

function next(type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${type} message within ${TIMEOUT} ms`)),
      TIMEOUT,
    );
    const look = () => {
      const index = received.findIndex((message) => message.type === type);
      if (index >= 0) {
        wake = () => {};
        clearTimeout(timer);
        resolve(received.splice(0, index + 1).pop());
      } else {
        wake = look;
      }
    };
    look();
  });
}

async function run(action) {
  if (action.recv) return { message: await next(action.recv) };
  if (action.send) {
    socket.send(JSON.stringify(action.send));
    return {};
  }
  if (action.reconnect) {
    socket.reconnect();
    return {};
  }
  if (action.fetch) {
    const query = { ...config.options.query, ...action.fetch.query };
    const options = { ...config.options, ...action.fetch, query };
    const response = await PartySocket.fetch(options, action.init);
    const text = await response.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: response.status, body };
  }
  if (action.id) return { id: socket.id, roomUrl: socket.roomUrl };
  if (action.hold) {
    await new Promise((resolve) => process.stdin.on("end", resolve).resume());
    return {};
  }
  throw new Error(`unknown action ${JSON.stringify(action)}`);
}

try {
  for (const [index, action] of (config.actions ?? []).entries()) {
    emit({ ok: index, ...(await run(action)) });
  }
  socket.close();
  process.exit(0);
} catch (error) {
  emit({ ok: null, error: String(error?.message ?? error) });
  process.exit(1);
}
