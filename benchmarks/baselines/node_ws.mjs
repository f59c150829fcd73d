// Node `ws` baseline: rooms by URL path; every message goes to every socket of its room.
import { createRequire } from "node:module";

// `ws` is installed in ../node (npm ci there).
const require = createRequire(new URL("../node/package.json", import.meta.url));
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 8001);
const rooms = new Map();
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const path = req.url.split("?")[0];
  let room = rooms.get(path);
  if (!room) rooms.set(path, (room = new Set()));
  room.add(ws);
  ws.on("message", (data, isBinary) => {
    for (const peer of room) peer.send(data, { binary: isBinary });
  });
  ws.on("close", () => {
    room.delete(ws);
    if (room.size === 0) rooms.delete(path);
  });
});
wss.on("listening", () => console.log(`listening on ${port}`));
